// The ceiling of the API figures: a bare node:http server on a Unix socket in a process of its own, answering every
// request with the very bytes the daemon sent for the same path (read once from a file into a Buffer, with the
// same content type), so it does nothing per request but parse it and write ready bytes. The daemon answers from its
// body cache too, so the difference is what the daemon itself does per request: peer credentials, identity, access
// checks, the cache lookup. (The old baseline, a fastify route re-serialising the parsed body on every request, was
// ten times slower than the daemon and flattered it.)
// Usage: node bare-server.js SOCKET BODY_FILE
import { readFileSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'

async function main (): Promise<void> {
  const [socket, bodyFile] = process.argv.slice(2)
  if (socket === undefined || bodyFile === undefined) throw new Error('usage: bare-server SOCKET BODY_FILE')
  const body = readFileSync(bodyFile)
  const headers = { 'content-type': 'application/json; charset=utf-8', 'content-length': String(body.length) }
  const server = createServer((_req, res) => {
    res.writeHead(200, headers)
    res.end(body)
  })
  rmSync(socket, { force: true })
  await new Promise<void>(resolve => server.listen(socket, resolve))
  process.stdout.write('ready\n')
  process.on('SIGTERM', () => { server.close(() => process.exit(0)) })
}

main().catch((err: unknown) => {
  process.stderr.write(`bare-server: ${(err as Error).message}\n`)
  process.exit(1)
})
