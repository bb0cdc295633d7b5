// A run must look dead on two readings a liveness interval apart before it is ended (run-check.ts). The interval is
// counted in the monitor's passes: two file events a moment apart are two readings but no interval, and once ended a
// fresh auto-run as "process gone" 90 ms after it was made, before its Nextflow had taken the session lock. Driven
// here by hand (the monitor's timer is off): a faithful fake Nextflow killed with SIGKILL, so that nothing but its
// dead pid and released lock tells the end, the real hpc target, the real probes.
import t from 'tap'
import type { Test } from 'tap'
import { existsSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { SecretValue } from '../../daemon/secret-value.js'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import { caller } from '../helpers/runs.js'
import { waitFor, watchFixture, type WatchFixture } from '../helpers/watch.js'

async function killedRun (t: Test, f: WatchFixture, name: string): Promise<{ runId: string, runDir: string }> {
  const launchDir = join(f.root, name)
  mkdirSync(launchDir, { recursive: true })
  await f.store.createSecret('user:root', 'API_TOKEN', new SecretValue('dead-readings-canary'), 'root').catch(() => {})
  const created = await f.runs.create(caller(), { mode: 'arm', launchDir, targets: ['hpc'] })
  const nf = await startFakeNextflow({ launchDir, sessionId: created.sessionId })
  t.teardown(() => nf.close())
  // No watch roots: the start is read by a check, as the monitor's pass would.
  await waitFor('running', async () => { await f.monitor.checkRun(created.runId); return f.ledger.get(created.runId)?.state === 'running' })
  await nf.kill()
  return { runId: created.runId, runDir: dirname(created.env.NXF_SECRETS_FILE!) }
}

const state = (f: WatchFixture, runId: string): string | undefined => f.ledger.get(runId)?.state

t.test('readings made by events a moment apart do not end a run; a whole interval of passes does', async t => {
  const f = await watchFixture(t)
  const r = await killedRun(t, f, 'proj-events')
  for (let i = 0; i < 5; i++) await f.monitor.checkRun(r.runId)
  t.equal(state(f, r.runId), 'running', 'five event readings in a row: still running (before the fix: killed at the second)')
  await f.monitor.tick()
  t.equal(state(f, r.runId), 'running', 'the next pass may have begun a moment after the first event: not yet')
  t.ok(existsSync(r.runDir), 'its secrets are still in place')
  await f.monitor.tick()
  t.equal(state(f, r.runId), 'killed', 'a pass a whole interval after the first dead reading ends it')
  t.equal(f.ledger.get(r.runId)?.endReason, 'process gone without a terminal line')
  t.notOk(existsSync(r.runDir), 'and its run dir is removed')
})

t.test('two passes in a row end a dead run', async t => {
  const f = await watchFixture(t)
  const r = await killedRun(t, f, 'proj-passes')
  await f.monitor.tick()
  t.equal(state(f, r.runId), 'running', 'one dead reading')
  await f.monitor.tick()
  t.equal(state(f, r.runId), 'killed', 'the second, one pass later, ends it')
  t.notOk(existsSync(r.runDir), 'and its run dir is removed')
})
