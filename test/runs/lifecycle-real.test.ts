// The run lifecycle with real parts: the hpc target on disk, the real liveness probes, and a faithful fake Nextflow.
import t from 'tap'
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { createHpcTarget } from '../../adapters/hpc.js'
import type { Target } from '../../adapters/types.js'
import { realProbes } from '../../daemon/runs/probes.js'
import { sessionAlive } from '../../daemon/runs/liveness/session.js'
import { SecretValue } from '../../daemon/secret-value.js'
import type { TargetName } from '../../daemon/types.js'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import { caller, runsFixture } from '../helpers/runs.js'
import { tmpdir } from 'node:os'

async function fixture (t: { teardown: (fn: () => void | Promise<void>) => void }): Promise<Awaited<ReturnType<typeof runsFixture>> & { runsRoot: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-life-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const runsRoot = join(dir, 'runs')
  mkdirSync(runsRoot, { mode: 0o700 })
  const hpc = createHpcTarget({ runsRoot, privileged: false, logger: pino({ level: 'silent' }) })
  const f = await runsFixture(t, { dir, targets: new Map<TargetName, Target>([['hpc', hpc]]), runProbes: realProbes() })
  return { ...f, runsRoot }
}

t.test('armed -> running -> completed on the history line; the run dir is gone', async t => {
  const f = await fixture(t)
  await f.store.createSecret('user:root', 'API_TOKEN', new SecretValue('s3cr3t'), 'root')
  const created = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, targets: ['hpc'] })
  const storeFile = created.env.NXF_SECRETS_FILE!
  t.ok(existsSync(storeFile))
  const nf = await startFakeNextflow({ launchDir: f.launchDir, sessionId: created.sessionId })
  t.teardown(() => nf.close())
  const monitor = f.runs.createMonitor({ intervalMs: 60_000, retentionDays: 30 })
  await monitor.tick()
  const run = f.ledger.get(created.runId)!
  t.equal(run.state, 'running')
  t.equal(run.runName, nf.runName)
  t.ok(await sessionAlive(realProbes(), run, nf.host), 'the session lock and pid say alive')
  await nf.finish('OK')
  await monitor.tick()
  t.equal(f.ledger.get(created.runId)?.state, 'completed')
  t.notOk(existsSync(join(storeFile, '..')), 'the whole run dir is gone')
})

t.test('a SIGKILLed Nextflow: killed after two dead readings, secrets removed', async t => {
  const f = await fixture(t)
  const created = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, targets: ['hpc'] })
  const nf = await startFakeNextflow({ launchDir: f.launchDir, sessionId: created.sessionId })
  t.teardown(() => nf.close())
  const monitor = f.runs.createMonitor({ intervalMs: 60_000, retentionDays: 30 })
  await monitor.tick()
  t.equal(f.ledger.get(created.runId)?.state, 'running')
  await nf.kill()
  await monitor.tick()
  t.equal(f.ledger.get(created.runId)?.state, 'running', 'debounced')
  await monitor.tick()
  t.equal(f.ledger.get(created.runId)?.state, 'killed')
  t.notOk(existsSync(join(created.env.NXF_SECRETS_FILE!, '..')))
})

t.test('-resume: the first new history line after arming is the run, though it carries an old UUID', async t => {
  const f = await fixture(t)
  const first = await startFakeNextflow({ launchDir: f.launchDir })
  await first.finish('ERR')
  const created = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, targets: ['hpc'] })
  t.equal(f.ledger.get(created.runId)?.historyMark, 1)
  const resumed = await startFakeNextflow({ launchDir: f.launchDir, sessionId: first.sessionId, resume: true })
  t.teardown(() => resumed.close())
  const monitor = f.runs.createMonitor({ intervalMs: 60_000, retentionDays: 30 })
  await monitor.tick()
  t.equal(f.ledger.get(created.runId)?.state, 'running')
  t.equal(f.ledger.get(created.runId)?.runName, resumed.runName)
  await resumed.finish('OK')
  await monitor.tick()
  t.equal(f.ledger.get(created.runId)?.state, 'completed')
})
