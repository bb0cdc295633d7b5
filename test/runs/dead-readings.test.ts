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
import { caller, runsFixture, type RunsFixture } from '../helpers/runs.js'
import { RunCheck, type Reading } from '../../daemon/runs/run-check.js'
import { localOwnership } from '../../daemon/runs/ownership.js'
import type { EndState } from '../../daemon/runs/service.js'
import { pino } from 'pino'
import { waitFor, watchFixture, type WatchFixture } from '../helpers/watch.js'

async function killedRun (t: Test, f: WatchFixture, name: string): Promise<{ runId: string, runDir: string }> {
  const launchDir = join(f.root, name)
  mkdirSync(launchDir, { recursive: true })
  if (f.store.getSecret('user:root', 'API_TOKEN') === undefined) await f.store.createSecret('user:root', 'API_TOKEN', new SecretValue('dead-readings-canary'), 'root')
  const created = await f.runs.create(caller(), { mode: 'arm', launchDir, targets: ['hpc'] })
  const nf = await startFakeNextflow({ launchDir, sessionId: created.sessionId })
  t.teardown(() => nf.close())
  // No watch roots: the start is read by a check, as the monitor's pass would.
  await waitFor('running', async () => { await f.monitor.checkRun(created.runId); return f.ledger.get(created.runId)?.state === 'running' })
  // One reading of the live session (its pid now recorded): a dead reading made while it was starting is forgotten.
  await f.monitor.checkRun(created.runId)
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

/** A running run whose recorded pid is dead and nothing else tells (fake probes). */
async function deadPidRun (t: Test): Promise<{ f: RunsFixture, runId: string }> {
  const f = await runsFixture(t)
  const { runId } = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, targets: ['memory'] })
  f.probes.alive.add(4242)
  await f.runs.markStarted(runId, { pid: 4242 })
  f.probes.alive.delete(4242)
  return { f, runId }
}

// The rule itself, with the pass count in the test's hand: a run with a dead pid and nothing else (fake probes).
t.test('RunCheck: when a second dead reading may end a run', async t => {
  const { f, runId } = await deadPidRun(t)
  const ended: EndState[] = []
  const check = new RunCheck({
    ledger: f.ledger,
    events: f.bus,
    ownership: localOwnership(''),
    probes: f.probes,
    host: f.ledger.get(runId)!.host,
    lifecycle: { markStarted: async () => null, hostHolds: () => false, provisioning: () => false }
  }, pino({ level: 'silent' }), async (_run, state) => { ended.push(state) })
  const read = async (passes: number, launchedBy: number | null): Promise<number> => {
    const reading: Reading = { launchedBy, passes: () => passes }
    await check.check(f.ledger.get(runId)!, new Date(), false, reading)
    return ended.length
  }
  // Pass 5's own round, then pass 6's: one interval apart.
  t.same([await read(5, 5), await read(6, 6)], [0, 1], 'a pass\'s reading is confirmed by the next pass')
  ended.length = 0
  // A late round of pass 10 that ends after pass 11 began: confirmed two passes on, like an event.
  t.same([await read(11, 10), await read(12, 12), await read(13, 13)], [0, 0, 1], 'a late round counts as an event: confirmed two passes on')
  ended.length = 0
  // ... and pass 11's own round right behind it is a first reading of its own, confirmed by the next pass: one interval.
  t.same([await read(51, 50), await read(51, 51), await read(52, 52)], [0, 0, 1], 'a pass\'s own round after a late round: confirmed by the next pass')
  ended.length = 0
  // An event's reading during a pass, then that pass's own round: the round's reading counts (a watcher event mid-pass
  // made the two-passes test below wait a third pass, now and then).
  t.same([await read(60, null), await read(60, 60), await read(61, 61)], [0, 0, 1], 'an event then the pass\'s own round: confirmed by the next pass')
  ended.length = 0
  // An event between passes, then pass 20 and 21: not yet, then yes.
  t.same([await read(20, null), await read(21, 21), await read(22, 22)], [0, 0, 1], 'an event\'s reading is confirmed from the pass after the next')
  ended.length = 0
  // A suspicion left unconfirmed (the run was another node's, or not checked) for passes on end starts again.
  t.same([await read(30, 30), await read(40, 40), await read(41, 41)], [0, 0, 1], 'a stale suspicion is not a first reading: the count starts again')
})

t.test('a pass whose round is overtaken by the next pass does not end a run on the two readings', async t => {
  const { f, runId } = await deadPidRun(t)
  // The next probe of the pid waits for the test: a slow probe on a loaded node.
  const alive = f.probes.processAlive.bind(f.probes)
  let entered = false
  let release: () => void = () => {}
  const gate = new Promise<void>(resolve => { release = resolve })
  let gated = true
  f.probes.processAlive = async (pid, start) => {
    if (gated) { gated = false; entered = true; await gate }
    return await alive(pid, start)
  }
  const first = f.monitor.tick()
  await waitFor('the first pass\'s probe', () => entered)
  // The next pass starts while the first's round still waits; its round for this user runs right behind.
  const second = f.monitor.tick()
  release()
  await Promise.all([first, second])
  t.equal(f.ledger.get(runId)?.state, 'running', 'two readings moments apart: still running (before the fix: killed)')
  // The second of them was the second pass's own round: the next pass's round, a pass later, confirms it.
  await f.monitor.tick()
  t.equal(f.ledger.get(runId)?.state, 'killed', 'the pass after the second reading ends it')
})
