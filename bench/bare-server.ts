// The baseline of the API figures: a bare fastify route on a Unix socket in a process of its own, answering with
// the same JSON body the daemon gave for the same path (read once from a file), serialised per request as the
// daemon's is. The difference to the daemon is then what the daemon itself does per request: peer credentials,
// identity, access checks, reading the store.
// Usage: node bare-server.js SOCKET BODY_FILE
import { readFileSync, rmSync } from 'node:fs'
import Fastify from 'fastify'

async function main (): Promise<void> {
  const [socket, bodyFile] = process.argv.slice(2)
  if (socket === undefined || bodyFile === undefined) throw new Error('usage: bare-server SOCKET BODY_FILE')
  const body: unknown = JSON.parse(readFileSync(bodyFile, 'utf8'))
  const app = Fastify({ logger: false })
  app.get('/*', async () => body)
  rmSync(socket, { force: true })
  await app.listen({ path: socket })
  process.stdout.write('ready\n')
  process.on('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
}

main().catch((err: unknown) => {
  process.stderr.write(`bare-server: ${(err as Error).message}\n`)
  process.exit(1)
})
