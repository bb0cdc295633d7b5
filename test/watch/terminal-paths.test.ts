// Every terminal path of a run in a watched dir, with native events and with polling: a faithful fake Nextflow on
// disk, the real hpc target, the real liveness probes. Clean ends (OK, ERR, Goodbye) are driven by file events alone
// (the monitor's timer is off); dirty ends (SIGKILL, Slurm job gone) write nothing, so the monitor's pass runs too.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { appendFileSync, existsSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { SecretValue } from '../../daemon/secret-value.js'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import { caller } from '../helpers/runs.js'
import { realProbes, type Probes } from '../../daemon/runs/probes.js'
import { waitFor, watchFixture, type WatchFixture } from '../helpers/watch.js'
import { whyNoSlurm } from '../helpers/requires.js'

async function armed (f: WatchFixture, name: string, extra: { slurmJobId?: string } = {}): Promise<{ runId: string, sessionId: string, launchDir: string, runDir: string }> {
  const launchDir = join(f.root, name)
  mkdirSync(launchDir, { recursive: true })
  await f.store.createSecret('user:root', 'API_TOKEN', new SecretValue('s3cr3t-value'), 'root').catch(() => {})
  const created = await f.runs.create(caller(), { mode: 'arm', launchDir, targets: ['hpc'], ...extra })
  const runDir = dirname(created.env.NXF_SECRETS_FILE!)
  if (!existsSync(runDir)) throw new Error('the run dir must exist while armed')
  return { runId: created.runId, sessionId: created.sessionId, launchDir, runDir }
}

const state = (f: WatchFixture, runId: string): string | undefined => f.ledger.get(runId)?.state

/** The run reached `end` and its revoke finished (the end is recorded first, the revoke follows at once). */
async function ended (f: WatchFixture, runId: string, end: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(end, () => state(f, runId) === end && Object.values(f.ledger.get(runId)!.targets).every(x => x?.state === 'revoked'), timeoutMs)
}

function goodbyeLine (): string {
  const d = new Date()
  const mon = d.toLocaleString('en-US', { month: 'short' })
  const p = (n: number, w = 2): string => String(n).padStart(w, '0')
  return `${mon}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)} [main] DEBUG nextflow.script.ScriptRunner - > Execution complete -- Goodbye\n`
}

for (const poll of [false, true]) {
  const mode = poll ? 'polling' : 'native'

  t.test(`${mode}: OK and ERR end the run as completed and failed, from the history line alone`, async t => {
    const f = await watchFixture(t, { watch: [{ poll, intervalMs: 200 }] })
    for (const [status, end] of [['OK', 'completed'], ['ERR', 'failed']] as const) {
      const r = await armed(f, `proj-${status}`)
      const nf = await startFakeNextflow({ launchDir: r.launchDir, sessionId: r.sessionId })
      t.teardown(() => nf.close())
      await waitFor(`${status}: running`, () => state(f, r.runId) === 'running')
      t.equal(f.ledger.get(r.runId)?.runName, nf.runName)
      await nf.finish(status)
      await ended(f, r.runId, end)
      t.equal(f.ledger.get(r.runId)?.endReason, `history ${status}`)
      t.notOk(existsSync(r.runDir), `${status}: the run dir is gone`)
      t.equal(f.ledger.get(r.runId)?.targets.hpc?.state, 'revoked')
    }
  })

  t.test(`${mode}: Goodbye in the log with the history line still '-' ends the run`, async t => {
    const f = await watchFixture(t, { watch: [{ poll, intervalMs: 200 }] })
    const r = await armed(f, 'proj-goodbye')
    const nf = await startFakeNextflow({ launchDir: r.launchDir, sessionId: r.sessionId })
    t.teardown(() => nf.close())
    await waitFor('running', () => state(f, r.runId) === 'running')
    appendFileSync(join(r.launchDir, '.nextflow.log'), goodbyeLine())
    await ended(f, r.runId, 'completed')
    t.equal(f.ledger.get(r.runId)?.endReason, 'log Goodbye')
    t.notOk(existsSync(r.runDir), 'the run dir is gone')
  })

  t.test(`${mode}: SIGKILL leaves '-' behind; the released lock and the dead pid end it as killed`, async t => {
    const f = await watchFixture(t, { watch: [{ poll, intervalMs: 200 }], monitorMs: 150 })
    const r = await armed(f, 'proj-kill')
    const nf = await startFakeNextflow({ launchDir: r.launchDir, sessionId: r.sessionId })
    t.teardown(() => nf.close())
    await waitFor('running', () => state(f, r.runId) === 'running')
    // Two whole passes of the monitor, waited for (a run must look dead on two in a row to be ended): no sleep.
    await f.monitor.tick()
    await f.monitor.tick()
    t.equal(state(f, r.runId), 'running', 'a live session (lock held, pid alive) is left alone')
    await nf.kill()
    await ended(f, r.runId, 'killed')
    t.equal(f.ledger.get(r.runId)?.endReason, 'process gone without a terminal line')
    t.notOk(existsSync(r.runDir), 'the run dir is gone')
  })

  t.test(`${mode}: a head in a Slurm job: alive while the job runs, killed when it is gone`, { skip: whyNoSlurm() }, async t => {
    // Slurm's answers counted, so the test knows when the monitor has heard of the job running (it asks off its pass).
    const probes = realProbes()
    let answers = 0
    const counted: Probes = { ...probes, slurmRefresh: async (ids) => { const ok = await probes.slurmRefresh(ids); if (ok) answers++; return ok } }
    const f = await watchFixture(t, { watch: [{ poll, intervalMs: 200 }], monitorMs: 150, probes: counted })
    const job = execFileSync('sbatch', ['--parsable', '--output=/dev/null', '--wrap', 'sleep 120'], { encoding: 'utf8' }).trim().split(';')[0]!
    t.teardown(() => { try { execFileSync('scancel', [job]) } catch {} })
    const r = await armed(f, 'proj-slurm', { slurmJobId: job })
    const nf = await startFakeNextflow({ launchDir: r.launchDir, sessionId: r.sessionId })
    t.teardown(() => nf.close())
    await waitFor('running', () => state(f, r.runId) === 'running')
    // The head's JVM on a compute node is invisible from here: only the job says whether it lives.
    await nf.kill()
    await waitFor('the job to run', () => execFileSync('squeue', ['-h', '-j', job, '-o', '%T'], { encoding: 'utf8' }).trim() === 'RUNNING', 15_000, 100)
    // An answer asked for after the job ran, then two whole passes reading it (dead twice in a row would end the run).
    const seen = answers
    await waitFor('Slurm to answer again', () => answers >= seen + 2, 15_000)
    await f.monitor.tick()
    await f.monitor.tick()
    t.equal(state(f, r.runId), 'running', 'the Slurm job still runs: the run stays')
    execFileSync('scancel', [job])
    await ended(f, r.runId, 'killed', 20_000)
    t.notOk(existsSync(r.runDir), 'the run dir is gone')
  })
}

t.test('a run armed outside every root is watched through its launch dir, and dropped when it ends', async t => {
  const f = await watchFixture(t)
  const launchDir = join(f.dir, 'elsewhere')
  mkdirSync(launchDir)
  const created = await f.runs.create(caller(), { mode: 'arm', launchDir, targets: ['hpc'] })
  await waitFor('the dir is watched', () => f.service.list(caller('root', { isAdmin: true })).some(w => w.source === 'run' && w.root === launchDir))
  const nf = await startFakeNextflow({ launchDir, sessionId: created.sessionId })
  t.teardown(() => nf.close())
  await waitFor('running', () => state(f, created.runId) === 'running')
  await nf.finish('OK')
  await ended(f, created.runId, 'completed')
  t.notOk(existsSync(dirname(created.env.NXF_SECRETS_FILE!)))
  await waitFor('the dir is dropped', () => !f.service.list(caller('root', { isAdmin: true })).some(w => w.source === 'run'))
})
