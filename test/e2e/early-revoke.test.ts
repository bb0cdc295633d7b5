// A run's end seen in its files (history OK, then Goodbye): the real daemon starts removing its hpc run dir as soon
// as the end is decided, beside the end's write (Revoker.startEarly). Made certain with a failpoint that holds that
// write: the run dir is gone while the ledger on disk still says `running`, and the revoke that follows removes
// nothing a second time. Then the crash this allows: SIGKILL after the removal, before the end is written. The
// restart finds the run live, ends it again from its files, and its revoke finds nothing left: completed, revoked,
// nothing on disk, the value in no log. And the same order in system mode, with a real second user's run and Nextflow.
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js'
import { json, runCli } from '../helpers/cli.js'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import { requireUsers } from '../helpers/requires.js'
import { ME } from '../helpers/users.js'
import { ledgerOnDisk } from '../helpers/ledger-file.js'
import { waitFor } from '../helpers/watch.js'

const CANARY = 'CANARY-early-revoke-value'

interface Run { runId: string, state: string, targets: Record<string, { state: string }> }

const onDisk = (d: Pick<TestDaemon, 'stateDir'>, runId: string): Run | undefined =>
  (ledgerOnDisk(d.stateDir) as unknown as { runs: Run[] }).runs.find(r => r.runId === runId)

function runDirs (dir: string, user = ME): string[] {
  const root = join(dir, 'runs', user)
  return existsSync(root) ? readdirSync(root) : []
}

/** A daemon watching `<dir>/root`, a secret, and a run armed in `<dir>/root/proj` whose Nextflow has started. */
async function running (t: Test, dir: string, failpoints: string): Promise<{ d: TestDaemon, runId: string, finish: () => Promise<unknown> }> {
  const launchDir = join(dir, 'root', 'proj')
  mkdirSync(launchDir, { recursive: true })
  const d = await startTestDaemon(t, { mode: 'user', dir, config: { watch: [{ root: join(dir, 'root'), depth: 1 }] }, env: { NF_SECRETSD_FAILPOINTS: failpoints } })
  const add = await runCli(['--socket', d.socket, 'secrets', 'add', 'API_TOKEN'], { input: CANARY })
  t.equal(add.code, 0, add.stderr)
  const arm = await runCli(['--socket', d.socket, 'arm', '--dir', launchDir, '--format', 'json'])
  t.equal(arm.code, 0, arm.stderr)
  const { runId, sessionId } = JSON.parse(arm.stdout) as { runId: string, sessionId: string }
  t.equal(runDirs(dir).length, 1, 'the run dir is there')
  const nf = await startFakeNextflow({ launchDir, sessionId })
  t.teardown(() => nf.close())
  await waitFor('the run is running', () => onDisk(d, runId)?.state === 'running', 15_000, 20)
  return { d, runId, finish: async () => await nf.finish('OK') }
}

t.test('the run dir goes before the end is written; the revoke then records it without removing again', async t => {
  const dir = tempDir(t)
  const { d, runId, finish } = await running(t, dir, 'ledger.decided-before-commit=3000')
  await finish()
  await waitFor('the run dir is gone', () => runDirs(dir).length === 0, 15_000, 10)
  t.equal(onDisk(d, runId)?.state, 'running', 'gone while the end was still being written')
  await waitFor('completed and revoked on disk', () => onDisk(d, runId)?.state === 'completed' && onDisk(d, runId)?.targets.hpc?.state === 'revoked', 15_000, 50)
  const removals = d.logs().filter(l => l.msg === 'hpc store revoked' && l.runId === runId)
  t.same(removals.map(l => l.removed), [true], 'one removal, which found the dir')
  await d.stop()
  t.notMatch(d.log(), CANARY)
})

t.test('SIGKILL after the early removal, before the end is written: the restart ends the run again and revokes it', async t => {
  const dir = tempDir(t)
  const { d: first, runId, finish } = await running(t, dir, 'ledger.decided-before-commit=3000,revoke.after-target')
  await finish()
  if (first.process.exitCode === null && first.process.signalCode === null) await new Promise(resolve => first.process.once('exit', resolve))
  t.equal(first.process.signalCode, 'SIGKILL', 'killed at the failpoint after the removal')
  t.same(runDirs(dir), [], 'the run dir was removed before the crash')
  t.equal(onDisk(first, runId)?.state, 'running', 'and the end never reached the disk')

  const second = await startTestDaemon(t, { mode: 'user', dir, config: { watch: [{ root: join(dir, 'root'), depth: 1 }] } })
  await waitFor('ended again and revoked', () => onDisk(second, runId)?.state === 'completed' && onDisk(second, runId)?.targets.hpc?.state === 'revoked', 20_000, 50)
  t.same(runDirs(dir), [], 'nothing is left on disk')
  await second.stop()
  t.notMatch(first.log() + second.log(), CANARY)
})

// As on a login node: the daemon as root (system mode), alice's own watch, her run dir handed to her and her Nextflow
// running as her. The early removal goes as the regular one does there (her dir, emptied with her credentials).
t.test('system mode: alice\'s run dir goes before her run\'s end is written', async t => {
  const [alice] = requireUsers(t, ['alice'])
  if (alice === undefined) return
  const dir = tempDir(t)
  const mine = join(dir, 'alice-data')
  const launchDir = join(mine, 'proj')
  mkdirSync(launchDir, { recursive: true })
  for (const d of [mine, launchDir]) chownSync(d, alice.uid, alice.gid)
  chmodSync(mine, 0o755)
  const keyFile = join(dir, 'master.key')
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  const d = await startTestDaemon(t, { mode: 'system', dir, config: { keyFile }, env: { NF_SECRETSD_FAILPOINTS: 'ledger.decided-before-commit=3000' } })
  const cli = (args: string[], input?: string): ReturnType<typeof runCli> => runCli(['--socket', d.socket, ...args], { user: 'alice', cwd: launchDir, ...(input !== undefined ? { input } : {}) })
  t.equal((await cli(['watch', 'add', mine, '--depth', '2'])).code, 0)
  t.equal((await cli(['secrets', 'add', 'API_TOKEN'], CANARY)).code, 0)
  const arm = await cli(['arm', '--dir', launchDir, '--format', 'json'])
  t.equal(arm.code, 0, arm.stderr)
  const { runId, sessionId } = json<{ runId: string, sessionId: string }>(arm.stdout)
  t.equal(runDirs(dir, 'alice').length, 1, 'her run dir is there')
  const nf = await startFakeNextflow({ launchDir, sessionId, uid: alice.uid, gid: alice.gid })
  t.teardown(() => nf.close())
  await waitFor('the run is running', () => onDisk(d, runId)?.state === 'running', 15_000, 20)
  await nf.finish('OK')
  await waitFor('her run dir is gone', () => runDirs(dir, 'alice').length === 0, 15_000, 10)
  t.equal(onDisk(d, runId)?.state, 'running', 'gone while the end was still being written')
  await waitFor('completed and revoked on disk', () => onDisk(d, runId)?.state === 'completed' && onDisk(d, runId)?.targets.hpc?.state === 'revoked', 15_000, 50)
  await d.stop()
  t.notMatch(d.log(), CANARY)
})
