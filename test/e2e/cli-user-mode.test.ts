// The real nf-secrets against a real nf-secretsd in user mode over a real Unix socket: every secrets command, --json,
// --base64, --value-file, values refused from argv and for unsafe characters, and the exit code of each failure.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as pty from '../../daemon/pty/node-pty.js'
import { CLI_BIN, NO_TAP_HOOKS, startTestDaemon, tempDir } from '../helpers/daemon.js'
import { errorCode, json, runCli, spawnCli, type RunOptions, type RunResult } from '../helpers/cli.js'
import { storedValue } from '../helpers/store-peek.js'
import type { SecretMeta } from '../../daemon/types.js'

// Every CLI call is a fresh node process: on a loaded 2-core CI machine this file needs minutes, not seconds.
t.setTimeout(600_000)
const daemon = await startTestDaemon(t, { mode: 'user' })
const env = { NF_SECRETS_SOCKET: daemon.socket }
const me = spawnSync('id', ['-un'], { encoding: 'utf8' }).stdout.trim()
const mine = `user:${me}` as const

function cli (args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return runCli(args, { ...opts, env: { ...env, ...opts.env } })
}

t.test('add, list, update, resolve, delete with --json', async t => {
  const add = await cli(['secrets', 'add', 'API_TOKEN', '--json'], { input: 'first-value\n' })
  t.equal(add.code, 0, add.stderr)
  const created = json<SecretMeta>(add.stdout)
  t.match(created, { name: 'API_TOKEN', scope: mine, version: 1, createdBy: me })
  t.equal(storedValue(daemon.stateDir, mine, 'API_TOKEN'), 'first-value', 'the echoed newline was stripped before storing')

  const list = await cli(['--json', 'secrets', 'list'])
  t.equal(list.code, 0, list.stderr)
  const rows = json<SecretMeta[]>(list.stdout)
  t.same(rows.map(r => [r.name, r.scope]), [['API_TOKEN', mine]])
  t.notOk('value' in rows[0]! || 'sealed' in rows[0]!, 'metadata only')

  const human = await cli(['secrets', 'list'])
  t.match(human.stdout, /^NAME\s+SCOPE/)
  t.match(human.stdout, new RegExp(`API_TOKEN\\s+${mine}\\s+1`))

  const update = await cli(['secrets', 'update', 'API_TOKEN', '--json'], { input: 'second-value' })
  t.equal(update.code, 0, update.stderr)
  t.equal(json<SecretMeta>(update.stdout).version, 2)
  t.equal(storedValue(daemon.stateDir, mine, 'API_TOKEN'), 'second-value')

  const resolved = await cli(['secrets', 'resolve', '--json'])
  t.equal(resolved.code, 0, resolved.stderr)
  t.same(json(resolved.stdout), [{ name: 'API_TOKEN', source: 'user', scope: mine }])

  const del = await cli(['secrets', 'delete', 'API_TOKEN', '--json'])
  t.equal(del.code, 0, del.stderr)
  t.same(json(del.stdout), { deleted: 'API_TOKEN', scope: mine })
  t.equal(storedValue(daemon.stateDir, mine, 'API_TOKEN'), null, 'gone from the store file')
  t.same(json((await cli(['secrets', 'list', '--json'])).stdout), [])
})

t.test('--base64 and --value-file', async t => {
  const multi = 'line one\nline "two" with `tick` and \\ slash\n'
  const b64 = await cli(['secrets', 'add', 'PEM_KEY', '--base64'], { input: multi })
  t.equal(b64.code, 0, b64.stderr)
  t.equal(storedValue(daemon.stateDir, mine, 'PEM_KEY'), Buffer.from(multi.slice(0, -1)).toString('base64'), 'encoded on the client, one newline stripped from stdin')

  const dir = tempDir(t)
  const file = join(dir, 'value.txt')
  writeFileSync(file, 'from-a-file\n', { mode: 0o600 })
  const fromFile = await cli(['secrets', 'add', 'FILE_SECRET', '--value-file', file])
  t.equal(fromFile.code, 0, fromFile.stderr)
  t.equal(storedValue(daemon.stateDir, mine, 'FILE_SECRET'), 'from-a-file')

  const bin = join(dir, 'keytab')
  const bytes = Buffer.from([0, 1, 2, 0xff, 0x0a])
  writeFileSync(bin, bytes, { mode: 0o600 })
  const binary = await cli(['secrets', 'update', 'FILE_SECRET', '--value-file', bin, '--base64'])
  t.equal(binary.code, 0, binary.stderr)
  t.equal(storedValue(daemon.stateDir, mine, 'FILE_SECRET'), bytes.toString('base64'), 'a file with --base64 is taken byte for byte')

  const missing = await cli(['secrets', 'add', 'NOPE_FILE', '--value-file', join(dir, 'absent')])
  t.equal(missing.code, 2)
  t.equal(errorCode(missing.stderr), 'NFS_ERR_USAGE')
})

t.test('on a terminal the value is read at a prompt that does not echo it', async t => {
  const value = 'typed-at-tty-51c0'
  const term = pty.spawn(NO_TAP_HOOKS[0]!, [...NO_TAP_HOOKS.slice(1), process.execPath, CLI_BIN, 'secrets', 'add', 'TTY_SECRET'], {
    cols: 100, rows: 10, cwd: '/', env: { PATH: process.env.PATH!, HOME: process.env.HOME!, ...env }
  })
  let screen = ''
  term.onData(d => { screen += d })
  const exited = new Promise<number>(resolve => term.onExit(e => resolve(e.exitCode)))
  t.teardown(() => { try { term.kill() } catch {} })
  for (let i = 0; i < 600 && !screen.includes('Value for TTY_SECRET'); i++) await new Promise(resolve => setTimeout(resolve, 100))
  t.match(screen, 'input hidden', 'a prompt on the terminal')
  // Typed in two bursts with a correction, as a person would.
  term.write(value.slice(0, 5))
  term.write(`X\x7f${value.slice(5)}\r`)
  t.equal(await exited, 0, screen)
  t.notMatch(screen, value.slice(0, 5), 'nothing typed was echoed')
  t.equal(storedValue(daemon.stateDir, mine, 'TTY_SECRET'), value, 'the backspace removed the X')
})

t.test('a value on the command line is refused before anything is sent', async t => {
  const canary = 'argv-value-9f1c'
  for (const args of [
    ['secrets', 'add', 'ARGV_SECRET', canary],
    ['secrets', 'update', 'ARGV_SECRET', canary],
    ['secrets', 'add', 'ARGV_SECRET', '--value', canary],
    ['secrets', 'add', 'ARGV_SECRET', `--value=${canary}`]
  ]) {
    const r = await cli(args, { input: 'piped\n' })
    t.equal(r.code, 2, args.join(' '))
    t.equal(errorCode(r.stderr), 'NFS_ERR_USAGE')
    t.notMatch(r.stderr + r.stdout, canary, 'the value is not echoed')
  }
  t.same(json<SecretMeta[]>((await cli(['secrets', 'list', '--json'])).stdout).filter(s => s.name === 'ARGV_SECRET'), [], 'nothing was created')
})

t.test('values Nextflow cannot pass safely are refused by the daemon (exit 2)', async t => {
  for (const [label, value] of [['newline', 'a\nb'], ['double quote', 'a"b'], ['backtick', 'a`b'], ['backslash', 'a\\b'], ['carriage return', 'a\rb']] as Array<[string, string]>) {
    const r = await cli(['secrets', 'add', 'BAD_CHARS'], { input: `${value}\n` })
    t.equal(r.code, 2, label)
    t.equal(errorCode(r.stderr), 'NFS_ERR_VALUE_CHARACTER', label)
    t.notMatch(r.stderr, value, 'the error does not quote the value')
  }
  const empty = await cli(['secrets', 'add', 'EMPTY_ONE'], { input: '\n' })
  t.equal(empty.code, 2)
  t.equal(errorCode(empty.stderr), 'NFS_ERR_VALUE_SIZE')
  t.equal(storedValue(daemon.stateDir, mine, 'BAD_CHARS'), null)
})

t.test('not found, conflict, bad names, usage', async t => {
  const notFound = await cli(['secrets', 'delete', 'NEVER_ADDED'])
  t.equal(notFound.code, 3)
  t.equal(errorCode(notFound.stderr), 'NFS_ERR_SECRET_NOT_FOUND')
  const upd = await cli(['secrets', 'update', 'NEVER_ADDED'], { input: 'x\n' })
  t.equal(upd.code, 3)

  t.equal((await cli(['secrets', 'add', 'DUP_NAME'], { input: 'one\n' })).code, 0)
  const dup = await cli(['secrets', 'add', 'DUP_NAME'], { input: 'two\n' })
  t.equal(dup.code, 5)
  t.equal(errorCode(dup.stderr), 'NFS_ERR_SECRET_EXISTS')
  t.equal(storedValue(daemon.stateDir, mine, 'DUP_NAME'), 'one', 'the first value stays')

  const badName = await cli(['secrets', 'add', '9starts_with_digit'], { input: 'v\n' })
  t.equal(badName.code, 2)
  t.equal(errorCode(badName.stderr), 'NFS_ERR_INVALID_NAME')

  const noWs = await cli(['secrets', 'list', '-w', 'nosuchws'])
  t.equal(noWs.code, 3)
  t.equal(errorCode(noWs.stderr), 'NFS_ERR_WORKSPACE_NOT_FOUND')

  const usage = await cli(['secrets'])
  t.equal(usage.code, 2)
  t.equal((await cli(['--help'])).code, 0)
  const version = await cli(['--version'])
  t.match(version.stdout, /^\d+\.\d+\.\d+/)
})

t.test('a daemon that is not there: exit 69', async t => {
  const dir = tempDir(t)
  const absent = await runCli(['--socket', join(dir, 'none.sock'), 'status'])
  t.equal(absent.code, 69)
  t.equal(errorCode(absent.stderr), 'NFS_ERR_UNAVAILABLE')
  // A socket file with nobody listening (a crashed daemon): ECONNREFUSED, same answer.
  const stale = join(dir, 'stale.sock')
  spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.exit(0))`])
  const refused = await runCli(['status'], { env: { NF_SECRETS_SOCKET: stale } })
  t.equal(refused.code, 69)
  t.equal(errorCode(refused.stderr), 'NFS_ERR_UNAVAILABLE')
})

t.test('whoami and status', async t => {
  const who = await cli(['whoami', '--json'])
  t.equal(who.code, 0, who.stderr)
  t.match(json(who.stdout), { user: me, uid: process.getuid!(), admin: true, roles: { personal: 'owner' } })
  const status = await cli(['status', '--json'])
  t.equal(status.code, 0, status.stderr)
  const s = json<{ mode: string, pid: number, secrets: number }>(status.stdout)
  t.equal(s.mode, 'user')
  t.equal(s.pid, daemon.process.pid)
  t.ok(s.secrets >= 1)
  const human = await cli(['status'])
  t.match(human.stdout, /mode:\s+user/)
})

t.test('events stream shows secret.created without the value', async t => {
  const value = 'event-canary-7d2e'
  const stream = spawnCli(t, ['events', '--json'], { env })
  await stream.waitFor('stderr', /streaming events/)
  const add = await cli(['secrets', 'add', 'EVENT_SECRET'], { input: `${value}\n` })
  t.equal(add.code, 0, add.stderr)
  await stream.waitFor('stdout', /secret\.created/)
  const result = await stream.stop('SIGTERM')
  t.equal(result.code, 0, 'Ctrl-C or SIGTERM ends the stream cleanly')
  const events = result.stdout.trim().split('\n').map(l => json<{ type: string, names?: string[], user: string }>(l))
  t.match(events.find(e => e.type === 'secret.created'), { type: 'secret.created', names: ['EVENT_SECRET'], user: me })
  t.notMatch(result.stdout, value)
})
