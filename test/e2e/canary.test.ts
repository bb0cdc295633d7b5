// A canary value set through the real CLI must show up nowhere but sealed in the store: not in the store file's bytes,
// the audit log, the daemon's log, any file of the state dir, any API answer the CLI prints, any error, any event.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startTestDaemon, tempDir } from '../helpers/daemon.js'
import { json, runCli, spawnCli, type RunOptions, type RunResult } from '../helpers/cli.js'
import { storedValue } from '../helpers/store-peek.js'
import { ME } from '../helpers/users.js'

t.setTimeout(600_000)

const canaries = [1, 2, 3].map(i => `CANARY${i}x${randomBytes(12).toString('hex')}`)
// Every form a leak could take: the value, its base64 (what --base64 sends), its hex.
const forms = canaries.flatMap(c => [c, Buffer.from(c).toString('base64'), Buffer.from(c).toString('hex')])

function leaks (text: string | Buffer): string[] {
  const s = Buffer.isBuffer(text) ? text.toString('latin1') : text
  return forms.filter(f => s.includes(f))
}

function filesUnder (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e => {
    const p = join(dir, e.name)
    return e.isDirectory() ? filesUnder(p) : e.isFile() ? [p] : []
  })
}

const daemon = await startTestDaemon(t, { mode: 'user', config: { logLevel: 'trace' } })
const env = { NF_SECRETS_SOCKET: daemon.socket }
const outputs: Array<{ what: string, r: RunResult }> = []

async function cli (args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await runCli(args, { ...opts, env })
  outputs.push({ what: args.join(' '), r })
  return r
}

t.test('set canaries through every input path, then read everything back', async t => {
  const events = spawnCli(t, ['events', '--json'], { env })
  await events.waitFor('stderr', /streaming events/)

  t.equal((await cli(['workspaces', 'create', 'canaryws', '--owner', ME])).code, 0, 'an admin makes itself owner: admins administer, members use')
  t.equal((await cli(['secrets', 'add', 'CANARY_USER', '--json'], { input: `${canaries[0]}\n` })).code, 0, 'from stdin')
  const file = join(tempDir(t), 'value')
  writeFileSync(file, `${canaries[1]}\n`, { mode: 0o600 })
  t.equal((await cli(['secrets', 'add', 'CANARY_WS', '-w', 'canaryws', '--value-file', file])).code, 0, 'from a file')
  t.equal((await cli(['secrets', 'update', 'CANARY_USER', '--base64'], { input: canaries[2] })).code, 0, 'with --base64')
  // Refused values must not be quoted back in the error.
  t.equal((await cli(['secrets', 'update', 'CANARY_USER'], { input: `${canaries[0]}"quoted"\n` })).code, 2)
  t.equal((await cli(['secrets', 'add', 'CANARY_USER'], { input: `${canaries[0]}\n` })).code, 5)
  t.equal((await cli(['secrets', 'add', '1bad_name'], { input: `${canaries[0]}\n` })).code, 2)

  for (const args of [
    ['secrets', 'list'], ['secrets', 'list', '--json'], ['secrets', 'list', '-w', 'canaryws', '--json'],
    ['secrets', 'resolve', '--json'], ['secrets', 'resolve', '-w', 'canaryws'], ['status', '--json'], ['status'],
    ['whoami', '--json'], ['workspaces', 'list', '--json'], ['workspaces', 'members', 'canaryws', '--json']
  ]) {
    const r = await cli(args)
    t.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
  }
  await cli(['secrets', 'delete', 'CANARY_WS', '-w', 'canaryws'])

  await events.waitFor('stdout', /secret\.deleted/)
  const stream = await events.stop()
  const types = stream.stdout.trim().split('\n').map(l => json<{ type: string }>(l).type)
  t.same(types, ['secret.created', 'secret.created', 'secret.updated', 'secret.deleted'], 'the stream saw every change')
  t.same(leaks(stream.stdout + stream.stderr), [], 'no event carries a value')

  // The values did arrive, and in the form each path promises.
  t.equal(storedValue(daemon.stateDir, `user:${ME}`, 'CANARY_USER'), Buffer.from(canaries[2]!).toString('base64'))

  for (const { what, r } of outputs) t.same(leaks(r.stdout + r.stderr), [], `nothing leaks from: ${what}`)

  t.equal(await daemon.stop(), 0, 'the daemon stopped cleanly (its log is complete)')
  const files = filesUnder(daemon.dir).filter(f => f !== file)
  t.ok(files.includes(join(daemon.stateDir, 'store.json')) && files.includes(join(daemon.stateDir, 'audit.log')) && files.includes(daemon.logFile))
  t.ok(readFileSync(daemon.logFile, 'utf8').split('\n').length > 20, 'the log is not empty (trace level)')
  t.ok(readFileSync(join(daemon.stateDir, 'audit.log'), 'utf8').includes('CANARY_USER'), 'the audit log names the secret')
  for (const f of files) {
    t.same(leaks(readFileSync(f)), [], `no value in ${f.slice(daemon.dir.length + 1)} (mode ${(statSync(f).mode & 0o777).toString(8)})`)
  }
})
