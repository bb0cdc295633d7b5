// The CLI checks who listens before it sends anything (daemon/cli/server-check.ts). The attack: bob runs a fake
// daemon on a socket alice's CLI (or an admin's) is pointed at, through NF_SECRETS_SOCKET or a kept XDG_RUNTIME_DIR,
// and records every byte it receives. Nothing may reach it: no value, no request at all.
import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { allowedServers } from '../../daemon/cli/server-check.js'
import { SYSTEM_SOCKET } from '../../daemon/os/paths.js'
import { requireUsers } from '../helpers/requires.js'
import { NO_TAP_HOOKS, tempDir } from '../helpers/daemon.js'
import { errorCode, runCli, type RunResult } from '../helpers/cli.js'

t.setTimeout(300_000)
const [, bob] = requireUsers(t, ['alice', 'bob'])

t.test('allowedServers, by table', async t => {
  t.same(allowedServers(SYSTEM_SOCKET, 1001), [0], 'the system socket: root only')
  t.same(allowedServers('/run/user/1001/nf-secretsd/api.sock', 1001), [0, 1001], 'elsewhere: root or the caller')
  t.same(allowedServers('/home/alice/.nf-secretsd/api.sock', 0), [0], 'a root CLI talks to root only')
})

const dir = tempDir(t)
chmodSync(dir, 0o755)

// bob's fake daemon: accepts, records, answers nothing. Its socket is world-connectable, as a system socket is.
const FAKE = `
const net = require('node:net'); const fs = require('node:fs')
const [path, log] = process.argv.slice(1)
fs.writeFileSync(log, '')
net.createServer((s) => { s.on('error', () => {}); s.on('data', (d) => fs.appendFileSync(log, d)) }).listen(path, () => { fs.chmodSync(path, 0o777); process.stdout.write('ready\\n') })
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
`

async function fakeDaemon (socketDir: string): Promise<{ socket: string, received: () => string }> {
  mkdirSync(socketDir, { recursive: true })
  chownSync(socketDir, bob!.uid, bob!.gid)
  chmodSync(socketDir, 0o755)
  const socket = join(socketDir, 'api.sock')
  const log = join(socketDir, 'received')
  const child = spawn('runuser', ['-u', 'bob', '--', ...NO_TAP_HOOKS, process.execPath, '-e', FAKE, socket, log], { stdio: ['pipe', 'pipe', 'inherit'] })
  // runuser's child is bob's: it ends when its stdin does.
  t.teardown(() => { child.stdin!.end(); child.kill('SIGTERM') })
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => { if (c.toString().includes('ready')) resolve() })
    child.once('exit', (code) => reject(new Error(`fake daemon exited ${code}`)))
  })
  return { socket, received: () => existsSync(log) ? readFileSync(log, 'utf8') : '' }
}

function refused (t: Test, r: RunResult, what: string): void {
  t.equal(r.code, 1, `${what}: exit 1 (${r.stderr.trim()})`)
  t.equal(errorCode(r.stderr), 'NFS_ERR_UNSAFE_PATH', `${what}: NFS_ERR_UNSAFE_PATH`)
}

t.test('alice\'s CLI pointed at bob\'s socket sends nothing', async t => {
  const fake = await fakeDaemon(join(dir, 'bob-sock'))
  const env = { NF_SECRETS_SOCKET: fake.socket }
  // The fake never answers: a CLI that sent its request would wait; 20 s is its deadline here.
  const timeoutMs = 20_000
  refused(t, await runCli(['secrets', 'add', 'ALICE_TOKEN'], { user: 'alice', env, timeoutMs, input: 'CANARY-alice-to-bob\n' }), 'secrets add')
  refused(t, await runCli(['whoami'], { user: 'alice', env, timeoutMs }), 'whoami')
  refused(t, await runCli(['events'], { user: 'alice', env, timeoutMs }), 'events (WebSocket)')
  refused(t, await runCli(['attach', 'aaaaaaaaaaaaaa'], { user: 'alice', env, timeoutMs }), 'attach (WebSocket)')
  t.equal(fake.received(), '', 'bob\'s fake daemon received not one byte')
})

t.test('an admin who su\'d from bob\'s session (bob\'s XDG_RUNTIME_DIR kept) sends nothing to bob', async t => {
  const runtime = join(dir, 'bob-runtime')
  const fake = await fakeDaemon(join(runtime, 'nf-secretsd'))
  const r = await runCli(['secrets', 'add', 'DB_PASS', '-w', 'lab'], { env: { XDG_RUNTIME_DIR: runtime, HOME: '/root' }, timeoutMs: 20_000, input: 'CANARY-root-to-bob\n' })
  refused(t, r, 'root: secrets add')
  t.equal(fake.received(), '', 'nothing reached bob')
})
