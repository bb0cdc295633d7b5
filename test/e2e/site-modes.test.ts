// System mode under the shipped unit's UMask=0077 (startTestDaemon's default for system mode): every directory the
// daemon makes gets its mode set explicitly, so alice's Nextflow-like command can read her own store, bob cannot
// list or read it, and the state dir, socket dir and socket come out as SPEC section 2 says.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { chownSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { requireUsers } from '../helpers/requires.js'
import { startTestDaemon, tempDir } from '../helpers/daemon.js'
import { runCli } from '../helpers/cli.js'

t.setTimeout(300_000)

const [alice] = requireUsers(t, ['alice', 'bob', 'carol'])
const CANARY = 'mOdE-' + randomBytes(8).toString('hex')

t.test('under umask 0077, alice\'s command reads her store; the modes are the documented ones', async t => {
  const dir = tempDir(t)
  const keyFile = join(dir, 'master.key')
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  // The default runs root of system mode: <state>/runs, inside the state dir.
  const stateRuns = join(dir, 'state', 'runs')
  const d = await startTestDaemon(t, { mode: 'system', dir, config: { keyFile, hpc: { runsRoot: stateRuns } } })
  const env = { NF_SECRETS_SOCKET: d.socket }
  const add = await runCli(['secrets', 'add', 'TOKEN'], { user: 'alice', env, input: CANARY })
  t.equal(add.code, 0, add.stderr)
  const work = join(dir, 'alice-work')
  mkdirSync(work, { mode: 0o700 })
  chownSync(work, alice!.uid, alice!.gid)
  // What Nextflow does with NXF_SECRETS_FILE: open the store and read it, as the run's user.
  const r = await runCli(['run', '--', 'sh', '-c', 'cat "$NXF_SECRETS_FILE" > seen.json && echo "$NXF_SECRETS_FILE" > store-path'], { user: 'alice', env, cwd: work })
  t.equal(r.code, 0, r.stderr)
  t.match(readFileSync(join(work, 'seen.json'), 'utf8'), CANARY, 'alice read her store')

  const modeOf = (p: string): string => (statSync(p).mode & 0o7777).toString(8)
  t.equal(modeOf(d.stateDir), '711', 'the state dir holding the runs root: search only')
  t.equal(modeOf(stateRuns), '711', 'the runs root')
  t.equal(modeOf(join(stateRuns, 'alice')), '711', 'the per-user dir')
  t.equal(modeOf(dirname(d.socket)), '755', 'the socket dir')
  t.equal(modeOf(d.socket), '666', 'the system socket')
  const storePath = readFileSync(join(work, 'store-path'), 'utf8').trim()
  t.equal(dirname(dirname(storePath)), join(stateRuns, 'alice'))
})

t.test('under umask 0077, a runs root outside the state dir: made 0711, the state dir stays 0700', async t => {
  const dir = tempDir(t)
  const keyFile = join(dir, 'master.key')
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  const runsRoot = join(dir, 'shared', 'runs')
  // The state dir was last held by a daemon on another host (a state dir on shared storage): status says so.
  mkdirSync(join(dir, 'state'), { mode: 0o700 })
  writeFileSync(join(dir, 'state', 'lock'), `${JSON.stringify({ pid: 1, host: 'login-other', since: '2026-01-01T00:00:00.000Z' })}\n`, { mode: 0o600 })
  const d = await startTestDaemon(t, { mode: 'system', dir, config: { keyFile, hpc: { runsRoot } } })
  const status = JSON.parse((await runCli(['status', '--json'], { user: 'alice', env: { NF_SECRETS_SOCKET: d.socket } })).stdout) as {
    warnings: Array<{ code: string }>, targets: { hpc: { warnings: Array<{ code: string }> } }
  }
  t.same(status.warnings.map(w => w.code), ['NFS_WARN_STATE_DIR_OTHER_HOST'])
  t.same(status.targets.hpc.warnings.map(w => w.code), ['NFS_WARN_RUNS_ROOT_NOT_SHARED'], 'a runs root in /tmp: local only')
  const env = { NF_SECRETS_SOCKET: d.socket }
  t.equal((await runCli(['secrets', 'add', 'TOKEN'], { user: 'alice', env, input: CANARY })).code, 0)
  const work = join(dir, 'alice-work')
  mkdirSync(work, { mode: 0o700 })
  chownSync(work, alice!.uid, alice!.gid)
  const r = await runCli(['run', '--', 'sh', '-c', 'cat "$NXF_SECRETS_FILE" > seen.json'], { user: 'alice', env, cwd: work })
  t.equal(r.code, 0, r.stderr)
  t.match(readFileSync(join(work, 'seen.json'), 'utf8'), CANARY)
  const modeOf = (p: string): string => (statSync(p).mode & 0o7777).toString(8)
  t.equal(modeOf(d.stateDir), '700')
  t.equal(modeOf(join(dir, 'shared')), '711', 'a missing parent the daemon made')
  t.equal(modeOf(runsRoot), '711')
  t.equal(modeOf(join(runsRoot, 'alice')), '711')
})
