// A SIGKILL of the daemon while it provisions 50 secrets to the aws target (moto), then a restart: nothing is left
// in moto and the ledger agrees (the run terminal, its target revoked). Once at the failpoint right after the
// secrets were placed and before the ledger heard of it, then at random moments of an `arm --target aws` in flight.
import t from 'tap'
import { randomInt } from 'node:crypto'
import { startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js'
import { json, runCli, spawnCli } from '../helpers/cli.js'
import { listAll, startMoto } from '../helpers/moto.js'
import { AWS_ENV, addSecrets, awsConfig, tagsOf } from '../helpers/aws-daemon.js'
import { requireMoto } from '../helpers/requires.js'
import { ledgerOnDisk } from '../helpers/ledger-file.js'

// Daemon restarts and 50-secret provisions at 40 calls/s: minutes on a loaded CI machine.
t.setTimeout(900_000)
requireMoto(t)
const moto = await startMoto(t)
const SECRETS = 50

interface RunView { runId: string, state: string, endReason: string | null, names: string[], targets: Record<string, { state: string }> }

function killed (d: TestDaemon): Promise<NodeJS.Signals | null> {
  const child = d.process
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.signalCode)
  return new Promise(resolve => child.once('exit', (_code, signal) => resolve(signal)))
}

/** The ledger as the restarted daemon reports it (every run, admin view of our own). */
async function ledger (d: TestDaemon): Promise<RunView[]> {
  const r = await runCli(['--socket', d.socket, 'runs', 'list', '--all', '--json'])
  if (r.code !== 0) throw new Error(r.stderr)
  return json<RunView[]>(r.stdout)
}

t.beforeEach(async () => { await moto.reset() })

t.test('failpoint run.after-provision: 50 secrets placed, daemon killed, restart removes them all', async t => {
  const dir = tempDir(t)
  const work = tempDir(t)
  const config = awsConfig(moto.endpoint)
  const first = await startTestDaemon(t, { mode: 'user', dir, config, env: { ...AWS_ENV, NF_SECRETSD_FAILPOINTS: 'run.after-provision' } })
  const values = await addSecrets(first.socket, SECRETS)
  const arm = await runCli(['--socket', first.socket, 'arm', '--target', 'aws', '--dir', work, '--format', 'json'])
  t.not(arm.code, 0, 'the arm request dies with the daemon')
  t.equal(await killed(first), 'SIGKILL')

  const placed = await listAll(moto.endpoint)
  t.equal(placed.length, SECRETS, 'every secret reached moto before the kill')
  const runId = tagsOf(placed[0]!)['nf-secretsd:run']!
  const before = (ledgerOnDisk(first.stateDir) as unknown as { runs: RunView[] }).runs
  t.same(before.map(r => [r.runId, r.state, r.targets.aws?.state, r.names.length]), [[runId, 'armed', 'provisioning', SECRETS]],
    'the ledger holds the intent with every name, the target still provisioning')

  const started = Date.now()
  const second = await startTestDaemon(t, { mode: 'user', dir, config, env: AWS_ENV })
  t.comment(`restart to ready, reconcile of ${SECRETS} secrets included: ${Date.now() - started} ms`)
  t.same(await listAll(moto.endpoint, true), [], 'nothing left in moto once the restarted daemon answers')
  const after = await ledger(second)
  t.same(after.map(r => [r.runId, r.state, r.targets.aws?.state]), [[runId, 'failed', 'revoked']], 'the ledger agrees')
  t.match(after[0]!.endReason, /interrupted/)
  const log = first.log() + second.log()
  t.notOk([...values.values()].some(v => log.includes(v)), 'no value in either daemon log')
})

t.test('SIGKILL at random moments of a 50-secret arm in flight, restart after each: moto empty, ledger terminal', async t => {
  const dir = tempDir(t)
  const work = tempDir(t)
  const config = awsConfig(moto.endpoint)
  let d = await startTestDaemon(t, { mode: 'user', dir, config, env: AWS_ENV })
  await addSecrets(d.socket, SECRETS)
  const seen: string[] = []
  for (let round = 1; round <= 3; round++) {
    // Kill once moto holds `k` of the run's secrets (0: after a random pause of up to half a second).
    const k = round === 1 ? 0 : randomInt(1, 41)
    const arm = spawnCli(t, ['--socket', d.socket, 'arm', '--target', 'aws', '--dir', work, '--format', 'json'])
    if (k === 0) await new Promise(resolve => setTimeout(resolve, randomInt(0, 500)))
    if (k > 0) {
      for (const deadline = Date.now() + 60_000; Date.now() < deadline; await new Promise(resolve => setTimeout(resolve, 20))) {
        if ((await listAll(moto.endpoint)).length >= k || arm.child.exitCode !== null) break
      }
    }
    d.process.kill('SIGKILL')
    await killed(d)
    const cli = await arm.stop()
    const count = (await listAll(moto.endpoint, true)).length
    seen.push(`round ${round}: killed at ${count}/${SECRETS} in moto (target ${k}), arm ${cli.code === 0 ? 'had finished' : 'was in flight'}`)

    d = await startTestDaemon(t, { mode: 'user', dir, config, env: AWS_ENV })
    if (cli.code === 0) {
      // The arm had answered before the kill: its run is the client's, armed until its TTL, and keeps its secrets.
      const { runId } = json<{ runId: string }>(cli.stdout)
      t.same((await ledger(d)).filter(r => r.runId === runId).map(r => [r.state, r.targets.aws?.state]), [['armed', 'provisioned']])
      t.equal((await listAll(moto.endpoint)).filter(s => tagsOf(s)['nf-secretsd:run'] === runId).length, SECRETS)
      t.equal((await runCli(['--socket', d.socket, 'runs', 'revoke', runId])).code, 0)
    }
    t.same((await listAll(moto.endpoint, true)).map(s => s.Name), [], `round ${round}: nothing left in moto after the restart`)
    const runs = await ledger(d)
    const open = runs.filter(r => !['completed', 'failed', 'killed', 'expired'].includes(r.state) || Object.values(r.targets).some(tg => tg.state !== 'revoked'))
    t.same(open.map(r => r.runId), [], `round ${round}: every run in the ledger is terminal with its target revoked`)
  }
  t.comment(seen.join('\n'))
})
