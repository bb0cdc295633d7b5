// The run archive through a real daemon (issue 18): a settled run leaves runs.json for runs-archive/ and still shows
// in `runs list --all`, `runs show`, status and metrics over the real socket; a crash between the archive's append and
// the hot rewrite loses nothing and doubles nothing; a broken archive answers a coded error and stays as it was;
// other users can neither read nor plant it. Runs are settled by a first daemon, then dated an hour back (the
// archive takes runs settled for 5 minutes), so the next daemon's first monitor pass archives them.
import t, { type Test } from 'tap'
import { appendFileSync, chmodSync, existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { call, startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js'
import { errorCode, json, runCli } from '../helpers/cli.js'
import { ensureUsers } from '../helpers/users.js'
import { ledgerOnDisk, seedLedger } from '../helpers/ledger-file.js'

const CANARY = 'CANARY-archive-value-5d1e'
interface Rec { runId: string, state: string, endedAt: string | null, targets: Record<string, { state: string, revokedAt: string | null }> }

const hot = (stateDir: string): Rec[] => (ledgerOnDisk(stateDir) as unknown as { runs: Rec[] }).runs
const archiveDir = (stateDir: string): string => join(stateDir, 'runs-archive')
const segments = (stateDir: string): string[] => existsSync(archiveDir(stateDir)) ? readdirSync(archiveDir(stateDir)).map(n => join(archiveDir(stateDir), n)) : []

async function cli (d: TestDaemon, ...args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return await runCli(['--socket', d.socket, ...args])
}

/** A first daemon arms a run holding the canary and revokes it; the records are then dated an hour back. */
async function settledRun (t: Test, dir: string): Promise<string> {
  const d = await startTestDaemon(t, { mode: 'user', dir })
  const add = await runCli(['--socket', d.socket, 'secrets', 'add', 'API_TOKEN'], { input: CANARY })
  t.equal(add.code, 0, add.stderr)
  const arm = await cli(d, 'arm', '--dir', dir, '--format', 'json')
  t.equal(arm.code, 0, arm.stderr)
  const { runId } = JSON.parse(arm.stdout) as { runId: string }
  t.equal((await cli(d, 'runs', 'revoke', runId)).code, 0)
  await d.stop()
  const hourAgo = new Date(Date.now() - 3_600_000).toISOString()
  const runs = hot(d.stateDir).map(r => r.runId !== runId
    ? r
    : { ...r, endedAt: hourAgo, targets: Object.fromEntries(Object.entries(r.targets).map(([n, x]) => [n, { ...x, revokedAt: hourAgo }])) })
  t.equal(runs.find(r => r.runId === runId)?.targets.hpc?.state, 'revoked', 'settled')
  seedLedger(d.stateDir, runs)
  return runId
}

async function until (what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 20_000
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

async function seenOnce (t: Test, d: TestDaemon, runId: string, why: string): Promise<void> {
  const all = await cli(d, 'runs', 'list', '--all', '--json')
  t.equal(all.code, 0, all.stderr)
  t.equal(json<Rec[]>(all.stdout).filter(r => r.runId === runId).length, 1, `runs list --all: once (${why})`)
  const status = await call(d.socket, 'GET', '/api/v1/status')
  t.equal(status.body?.runs?.killed, 1, `status counts it once (${why})`)
}

t.test('an archived run leaves runs.json and still shows through the socket', async t => {
  const dir = tempDir(t)
  const runId = await settledRun(t, dir)
  const d = await startTestDaemon(t, { mode: 'user', dir })
  await until('the run is archived', () => !hot(d.stateDir).some(r => r.runId === runId))
  const [segment] = segments(d.stateDir)
  t.equal(statSync(archiveDir(d.stateDir)).mode & 0o777, 0o700)
  t.equal(statSync(segment!).mode & 0o777, 0o600)
  t.match(readFileSync(segment!, 'utf8'), runId)
  t.notMatch(readFileSync(segment!, 'utf8'), CANARY, 'names only, never a value')

  const listed = await cli(d, 'runs', 'list', '--json')
  t.same(json<Rec[]>(listed.stdout).map(r => r.runId), [], 'not among the runs that hold something')
  await seenOnce(t, d, runId, 'archived')
  const show = await cli(d, 'runs', 'show', runId, '--json')
  t.equal(show.code, 0, show.stderr)
  t.equal(json<Rec>(show.stdout).state, 'killed')
  t.equal(json<Rec>(show.stdout).targets.hpc?.state, 'revoked')
  t.equal((await cli(d, 'runs', 'revoke', runId)).code, 0, 'revoking a settled run answers as before')
  const metrics = await call(d.socket, 'GET', '/metrics')
  t.match(metrics.text, /nfsecretsd_runs\{state="killed"\} 1\b/)
  t.match(metrics.text, /nfsecretsd_run_targets\{target="hpc",state="revoked"\} 1\b/)
  await d.stop()
  t.notMatch(d.log(), CANARY)
})

t.test('SIGKILL between the archive append and the hot rewrite: nothing lost, nothing doubled', async t => {
  const dir = tempDir(t)
  const runId = await settledRun(t, dir)
  // (A move repeated after such a crash appends the run twice: listed and counted once, test/store/run-archive.test.ts.)
  const crashing = await startTestDaemon(t, { mode: 'user', dir, env: { NF_SECRETSD_FAILPOINTS: 'ledger.after-archive' }, wait: false })
  if (crashing.process.exitCode === null && crashing.process.signalCode === null) await new Promise(resolve => crashing.process.once('exit', resolve))
  t.equal(crashing.process.signalCode, 'SIGKILL', 'killed at the failpoint')
  t.ok(hot(crashing.stateDir).some(r => r.runId === runId), 'still in runs.json')
  t.match(readFileSync(segments(crashing.stateDir)[0]!, 'utf8'), runId, 'and already in the archive')

  // The hot copy dated now, so that this daemon keeps it hot (5 minutes) and the run stays in both files while asked.
  const now = new Date().toISOString()
  const runs = hot(crashing.stateDir).map(r => r.runId !== runId ? r : { ...r, endedAt: now })
  seedLedger(crashing.stateDir, runs)
  const d = await startTestDaemon(t, { mode: 'user', dir })
  await seenOnce(t, d, runId, 'in both files')
  const show = await cli(d, 'runs', 'show', runId, '--json')
  t.equal(json<Rec>(show.stdout).endedAt, now, 'the hot copy wins')
  const metrics = await call(d.socket, 'GET', '/metrics')
  t.match(metrics.text, /nfsecretsd_runs\{state="killed"\} 1\b/)
  t.ok(hot(d.stateDir).some(r => r.runId === runId), 'still in both while this ran')
})

t.test('a broken archive answers NFS_ERR_STORE_UNREADABLE and is left as it was', async t => {
  const dir = tempDir(t)
  const runId = await settledRun(t, dir)
  const first = await startTestDaemon(t, { mode: 'user', dir })
  await until('the run is archived', () => !hot(first.stateDir).some(r => r.runId === runId))
  await first.stop()
  const [segment] = segments(first.stateDir)
  appendFileSync(segment!, 'garbage\n')
  const bytes = readFileSync(segment!)

  const d = await startTestDaemon(t, { mode: 'user', dir })
  const all = await cli(d, 'runs', 'list', '--all')
  t.not(all.code, 0)
  t.equal(errorCode(all.stderr), 'NFS_ERR_STORE_UNREADABLE', all.stderr)
  t.equal(errorCode((await cli(d, 'runs', 'show', runId)).stderr), 'NFS_ERR_STORE_UNREADABLE')
  t.equal((await cli(d, 'runs', 'list', '--json')).code, 0, 'the live runs still list')
  await d.stop()
  t.same(readFileSync(segment!), bytes, 'the archive is untouched')
})

t.test('another user can neither read the archive nor plant a file or symlink in it', async t => {
  const [alice] = ensureUsers(['alice'])
  const dir = tempDir(t)
  const runId = await settledRun(t, dir)
  const d = await startTestDaemon(t, { mode: 'user', dir })
  await until('the run is archived', () => !hot(d.stateDir).some(r => r.runId === runId))
  const [segment] = segments(d.stateDir)
  // The state dir is 0711 on a site whose runs root is inside it (docs/config.md): searchable by anyone, so what keeps
  // alice out is the archive's own modes, as tested here.
  chmodSync(d.stateDir, 0o711)
  const as = (...cmd: string[]): number | null => spawnSync('runuser', ['-u', alice!.name, '--', ...cmd], { encoding: 'utf8' }).status
  t.equal(as('test', '-x', d.stateDir), 0, 'the state dir is searchable')
  t.not(as('cat', segment!), 0, 'cannot read a segment')
  t.not(as('ls', archiveDir(d.stateDir)), 0, 'cannot list the archive')
  const tomorrow = join(archiveDir(d.stateDir), `${new Date(Date.now() + 86_400_000).toISOString().slice(0, 10)}.jsonl`)
  t.not(as('ln', '-s', '/etc/passwd', tomorrow), 0, 'cannot plant a symlink where the next segment goes')
  t.not(as('sh', '-c', `echo x > ${tomorrow}`), 0, 'nor a file')
  t.notOk(existsSync(tomorrow))
})
