// SPEC 11's per-user limits, attacked as the real user bob against a system-mode daemon while alice works: idle
// connections by the thousand (at the fd ceiling the security review used), runs up to the limit, streams that stop
// answering. Nothing of this may lock alice out, and nothing may crash the daemon.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { connect } from 'node:net'
import { chownSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import WebSocket from 'ws'
import { ensureUsers } from '../helpers/users.js'
import { requireUsers } from '../helpers/requires.js'
import { call, startTestDaemon, tempDir } from '../helpers/daemon.js'
import { errorCode, runCli, type RunOptions, type RunResult } from '../helpers/cli.js'
import { holdConnections, timeGets } from '../helpers/hostile.js'

t.setTimeout(600_000)

const [, bob] = requireUsers(t, ['alice', 'bob'])
const dir = tempDir(t)
const PER_UID = 64
const LIVE_RUNS = 5
// Long enough for the checks below to run while bob still holds his connections, short enough to wait for.
const IDLE_S = 5
const keyFile = join(dir, 'master.key')
writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
const daemon = await startTestDaemon(t, {
  mode: 'system',
  dir,
  config: { adminGroup: 'nfs-e2e-admins', keyFile, runs: { defaultTargets: ['hpc'] }, limits: { connectionsPerUid: PER_UID, liveRunsPerUser: LIVE_RUNS, idleTimeoutSeconds: IDLE_S } }
})
// The review's conditions: the daemon's fd ceiling at 1024, below what one user can open.
execFileSync('prlimit', ['--pid', String(daemon.process.pid), '--nofile=1024:1024'])

function as (user: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return runCli(args, { ...opts, user, env: { NF_SECRETS_SOCKET: daemon.socket, ...opts.env } })
}

function socketsOfDaemon (): number {
  return readdirSync(`/proc/${daemon.process.pid}/fd`).length
}

t.test('1,100 idle connections of bob: 64 held, the rest refused with NFS_ERR_LIMIT, alice served, all closed when idle', async t => {
  const before = socketsOfDaemon()
  const hold = await holdConnections(t, 'bob', daemon.socket, 1100)
  t.comment(`bob: ${JSON.stringify(hold.opened)}`)
  t.ok(hold.opened.refused >= 1100 - PER_UID, 'every connection beyond the limit was answered NFS_ERR_LIMIT')
  t.ok(hold.opened.open <= PER_UID, `bob holds at most ${PER_UID} (${hold.opened.open})`)
  t.ok(socketsOfDaemon() - before <= PER_UID + 20, 'the daemon holds no more fds for bob than the limit and a few refusals')

  const bobs = await as('bob', ['whoami'])
  t.equal(bobs.code, 1, 'bob\'s own CLI is refused while he is at the limit')
  t.equal(errorCode(bobs.stderr), 'NFS_ERR_LIMIT', `a coded refusal, not a reset (${bobs.stderr.trim()})`)
  const who = await as('alice', ['whoami', '--json'])
  t.equal(who.code, 0, `alice is served while bob holds his connections (${who.stderr.trim()})`)
  t.equal((await as('alice', ['secrets', 'add', 'ALICE_TOKEN'], { input: 'alice-value\n' })).code, 0, 'alice writes')
  const timings = await timeGets('alice', daemon.socket, '/api/v1/secrets', 100)
  t.same([...new Set(timings.statuses)], [200], 'every one of alice\'s GET /secrets answered 200')
  t.comment(`alice GET /secrets while bob holds ${PER_UID} connections: p50 ${timings.p50.toFixed(1)} ms, p99 ${timings.p99.toFixed(1)} ms (measured, not asserted)`)

  // The idle timeout: bob's connections never sent a byte, and the daemon closes every one of them.
  // A deadline, not a measurement: Node's own headersTimeout (60 s) would close them too, much later.
  const closed = await Promise.race([hold.allClosed.then(() => true), new Promise<boolean>(resolve => setTimeout(resolve, 40_000, false).unref())])
  t.ok(closed, `the daemon closed all of bob's idle connections (idleTimeoutSeconds ${IDLE_S}, well before Node's own 60 s)`)
  hold.stop()
  t.equal((await as('bob', ['whoami'])).code, 0, 'bob is served again once his connections are gone')
  t.equal(daemon.process.exitCode, null, 'the daemon is still running')
})

t.test('bob at liveRunsPerUser gets NFS_ERR_LIMIT while alice still arms', async t => {
  const bobDir = join(dir, 'bob-proj')
  mkdirSync(bobDir)
  chownSync(bobDir, bob!.uid, bob!.gid)
  const aliceDir = join(dir, 'alice-proj')
  mkdirSync(aliceDir)
  chownSync(aliceDir, ensureUsers(['alice'])[0]!.uid, ensureUsers(['alice'])[0]!.gid)
  for (let i = 0; i < LIVE_RUNS; i++) {
    const r = await as('bob', ['arm', '--dir', bobDir, '--ttl', '1h'])
    t.equal(r.code, 0, `bob's arm ${i + 1} (${r.stderr.trim()})`)
  }
  const over = await as('bob', ['arm', '--dir', bobDir, '--ttl', '1h'])
  t.equal(over.code, 1, 'exit 1')
  t.equal(errorCode(over.stderr), 'NFS_ERR_LIMIT', 'bob\'s next arm is refused')
  const overRun = await as('bob', ['run', '--', 'true'], { cwd: bobDir })
  t.equal(errorCode(overRun.stderr), 'NFS_ERR_LIMIT', 'and so is his next run')
  const armed = await as('alice', ['arm', '--dir', aliceDir, '--ttl', '1h', '--format', 'json'])
  t.equal(armed.code, 0, `alice still arms (${armed.stderr.trim()})`)
  const timings = await timeGets('alice', daemon.socket, '/api/v1/secrets', 100)
  t.same([...new Set(timings.statuses)], [200])
  t.comment(`alice GET /secrets while bob is at liveRunsPerUser: p50 ${timings.p50.toFixed(1)} ms, p99 ${timings.p99.toFixed(1)} ms (measured, not asserted)`)
  const listed = await call(daemon.socket, 'GET', '/api/v1/runs')
  t.equal(listed.status, 200)
  t.equal((listed.body as Array<{ user: string, state: string }>).filter(r => r.user === 'bob' && r.state === 'armed').length, LIVE_RUNS, 'bob holds exactly the limit')
})

t.test('event streams are kept alive by pings, and a stream that stops answering is closed', async t => {
  const url = `ws+unix://${daemon.socket}:/api/v1/events`
  const alive = new WebSocket(url)
  const dead = new WebSocket(url, { autoPong: false })
  t.teardown(() => { alive.terminate(); dead.terminate() })
  const deadClosed = new Promise<number>(resolve => dead.once('close', (c) => resolve(c)))
  await Promise.all([alive, dead].map(ws => new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })))
  // Three pings answered span more than one idle timeout: the stream lives on past it.
  let pings = 0
  await new Promise<void>(resolve => alive.on('ping', () => { if (++pings === 3) resolve() }))
  t.equal(alive.readyState, WebSocket.OPEN, 'a stream that answers pings stays open past the idle timeout')
  const code = await deadClosed
  t.ok(code === 1006 || code === 1001, `a stream that never answers is terminated (close ${code})`)
  t.equal(alive.readyState, WebSocket.OPEN)
})

t.test('hostile sockets end themselves, never the daemon', async t => {
  const raw = (bytes: string, destroyAfterWrite: boolean): Promise<string> => new Promise((resolve) => {
    const s = connect(daemon.socket)
    let got = ''
    s.on('data', (d) => { got += d.toString() })
    s.on('error', () => {})
    s.on('close', () => resolve(got))
    s.write(bytes, () => { if (destroyAfterWrite) s.destroy() })
  })
  t.match(await raw('GARBAGE / NOT-HTTP\r\n\r\n', false), /NFS_ERR_BAD_REQUEST/, 'garbage gets the coded 400')
  await raw('POST /api/v1/secrets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"na', true)
  await raw('GET /api/v1/events HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\x00\xff', true)
  const big = new WebSocket(`ws+unix://${daemon.socket}:/api/v1/events`)
  big.on('error', () => {})
  await new Promise(resolve => big.once('open', resolve))
  const closed = new Promise<number>(resolve => big.once('close', (c) => resolve(c)))
  big.send(Buffer.alloc(200 * 1024, 'x'))
  t.equal(await closed, 1009, 'a frame over the 64 KiB cap ends that stream (1009)')
  t.equal((await call(daemon.socket, 'GET', '/api/v1/health')).status, 200, 'the daemon answers')
  t.equal(daemon.process.exitCode, null, 'and is still running')
})
