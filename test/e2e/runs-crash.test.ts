// Crash anywhere: the daemon SIGKILLs itself at a failpoint (right after the ledger intent, right after the store is
// written, in the middle of a revoke); a restart removes what was placed and the ledger agrees.
import t from 'tap'
import { existsSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js'
import { runCli } from '../helpers/cli.js'
import { ME } from '../helpers/users.js'
import { ledgerOnDisk } from '../helpers/ledger-file.js'

interface Ledger { runs: Array<{ runId: string, state: string, targets: Record<string, { state: string }> }> }

function ledger (d: Pick<TestDaemon, 'stateDir'>): Ledger {
  return ledgerOnDisk(d.stateDir) as unknown as Ledger
}

function runDirs (dir: string): string[] {
  const root = join(dir, 'runs', ME)
  return existsSync(root) ? readdirSync(root) : []
}

async function exited (d: TestDaemon): Promise<string | null> {
  if (d.process.exitCode === null && d.process.signalCode === null) await new Promise(resolve => d.process.once('exit', resolve))
  return d.process.signalCode
}

async function withSecret (d: TestDaemon): Promise<void> {
  const add = await runCli(['--socket', d.socket, 'secrets', 'add', 'API_TOKEN'], { input: 'CANARY-crash-value' })
  if (add.code !== 0) throw new Error(add.stderr)
}

for (const point of ['run.after-intent', 'run.after-provision'] as const) {
  t.test(`SIGKILL at ${point}: the restart removes the run's secrets`, async t => {
    const dir = tempDir(t)
    const first = await startTestDaemon(t, { mode: 'user', dir, env: { NF_SECRETSD_FAILPOINTS: point } })
    await withSecret(first)
    const arm = await runCli(['--socket', first.socket, 'arm', '--dir', dir])
    t.equal(arm.code, 69, 'the client sees the daemon go away')
    t.equal(await exited(first), 'SIGKILL')
    const [crashed] = ledger(first).runs
    t.equal(crashed?.targets.hpc?.state, 'provisioning', 'the intent was durable before the target was touched')
    if (point === 'run.after-provision') t.equal(runDirs(dir).length, 1, 'the store was written before the crash')

    const second = await startTestDaemon(t, { mode: 'user', dir })
    const after = ledger(second).runs.find(r => r.runId === crashed!.runId)
    t.equal(after?.state, 'failed')
    t.equal(after?.targets.hpc?.state, 'revoked')
    t.same(runDirs(dir), [], 'nothing is left on disk')
    await second.stop()
    t.notMatch(second.log() + first.log(), 'CANARY-crash-value')
  })
}

for (const point of ['revoke.before-target', 'revoke.after-target'] as const) {
  t.test(`SIGKILL at ${point}: the restart finishes the revoke`, async t => {
    const dir = tempDir(t)
    const first = await startTestDaemon(t, { mode: 'user', dir, env: { NF_SECRETSD_FAILPOINTS: point } })
    await withSecret(first)
    const arm = await runCli(['--socket', first.socket, 'arm', '--dir', dir, '--format', 'json'])
    t.equal(arm.code, 0, arm.stderr)
    const { runId } = JSON.parse(arm.stdout) as { runId: string }
    const revoke = await runCli(['--socket', first.socket, 'runs', 'revoke', runId])
    t.equal(revoke.code, 69)
    t.equal(await exited(first), 'SIGKILL')
    const mid = ledger(first).runs.find(r => r.runId === runId)
    t.equal(mid?.state, 'killed', 'the end was recorded before the target was touched')
    t.equal(mid?.targets.hpc?.state, 'revoking')
    t.equal(runDirs(dir).length, point === 'revoke.before-target' ? 1 : 0)

    const second = await startTestDaemon(t, { mode: 'user', dir })
    const deadline = Date.now() + 20_000
    while (ledger(second).runs.find(r => r.runId === runId)?.targets.hpc?.state !== 'revoked' && Date.now() < deadline) {
      await new Promise(resolve => setTimeout(resolve, 100))
    }
    t.equal(ledger(second).runs.find(r => r.runId === runId)?.targets.hpc?.state, 'revoked')
    t.same(runDirs(dir), [])
  })
}
