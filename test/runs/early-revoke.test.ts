// The early removal of a run's local target (Revoker.startEarly, from the end's UpdateOptions.decided): it starts
// before the end is on disk, the run's revoke then records it as its own attempt (one removal, not two), its failure
// is retried after the delay like any, and it is not started for an end that is refused, a launched run or a second
// run of a user whose early removal is still going. The memory target stands for hpc here (orchestration only); the
// real hpc target and a crash between the removal and the end's write: test/e2e/early-revoke.test.ts.
import t from 'tap'
import { chownSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { createMemoryTarget } from '../../adapters/memory.js'
import type { Target } from '../../adapters/types.js'
import type { RunRecord, TargetName } from '../../daemon/types.js'
import { caller, runsFixture, type RunsFixture, type Teardown } from '../helpers/runs.js'
import { ledgerOnDisk } from '../helpers/ledger-file.js'

async function hpcFixture (t: Teardown): Promise<RunsFixture & { diskStateAtRemoval: string[], mostAtOnce: () => number }> {
  const memory = createMemoryTarget()
  const diskStateAtRemoval: string[] = []
  let inFlight = 0
  let most = 0
  // The memory target in the hpc slot, noting what the ledger on disk says at the moment a removal begins, and how
  // many removals ran at once.
  const hpc: Target = {
    ...memory,
    revoke: async run => {
      const rec = (ledgerOnDisk(f.config.stateDir) as unknown as { runs: RunRecord[] }).runs.find(r => r.runId === run.runId)
      diskStateAtRemoval.push(rec?.state ?? 'none')
      most = Math.max(most, ++inFlight)
      try { await memory.revoke(run) } finally { inFlight-- }
    }
  }
  const f = await runsFixture(t, {
    memory,
    targets: new Map<TargetName, Target>([['hpc', hpc]]),
    configure: c => ({ ...c, runs: { ...c.runs, defaultTargets: ['hpc'] } })
  })
  return Object.assign(f, { diskStateAtRemoval, mostAtOnce: () => most })
}

const revokes = (f: RunsFixture, runId: string): number => f.memory.calls.filter(c => c.op === 'revoke' && c.runId === runId).length

t.test('the removal starts before the end is written; the revoke records it without removing again', async t => {
  const f = await hpcFixture(t)
  const { runId } = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  const armed = f.ledger.get(runId)!
  const ended = await f.runs.endWithoutRevoke(runId, 'completed', 'log Goodbye', {}, undefined, rec => { f.runs.revoker.startEarly(rec) })
  t.equal(ended.targets.hpc?.state, 'revoking')
  t.same(f.diskStateAtRemoval, ['armed'], 'the removal began while the disk still held the live run')
  const done = await f.runs.revoker.revoke(runId, false)
  t.same([done.targets.hpc?.state, done.version], ['revoked', armed.version + 2], 'recorded revoked in one more write')
  t.equal(revokes(f, runId), 1, 'removed once: the early removal was the revoke\'s attempt')
  t.notOk(f.memory.placed.has(runId))
})

t.test('an early removal that failed is the attempt: revoke_failed, then retried after its delay', async t => {
  const f = await hpcFixture(t)
  const { runId } = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  f.memory.options.failRevokeTimes = 1
  await f.runs.endWithoutRevoke(runId, 'failed', 'history ERR', {}, undefined, rec => { f.runs.revoker.startEarly(rec) })
  const failed = await f.runs.revoker.revoke(runId, false)
  t.equal(failed.targets.hpc?.state, 'revoke_failed')
  t.equal(failed.targets.hpc?.attempts, 1)
  t.equal(revokes(f, runId), 1, 'not removed a second time at once')
  t.not(failed.targets.hpc?.nextAttemptAt, null, 'a retry time is set')
  const retried = await f.runs.revoker.revoke(runId)
  t.equal(retried.targets.hpc?.state, 'revoked')
  t.equal(revokes(f, runId), 2)
})

t.test('no early removal for a refused end, a launched run, or a run not `revoking`', async t => {
  const f = await hpcFixture(t)
  const { runId } = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  let called = 0
  const refused = await f.runs.endWithoutRevoke(runId, 'expired', 'ttl', {}, () => false, rec => { called++; f.runs.revoker.startEarly(rec) })
  t.equal(refused.state, 'armed', 'the end did not apply')
  t.equal(called, 0, 'and was never decided')
  const live = f.ledger.get(runId)!
  f.runs.revoker.startEarly({ ...live, state: 'completed', mode: 'launch', targets: { hpc: { ...live.targets.hpc!, state: 'revoking' } } })
  f.runs.revoker.startEarly(live)
  await sleep(20)
  t.equal(revokes(f, runId), 0, 'nothing removed')
  t.ok(f.memory.placed.has(runId), 'the live run keeps its secrets')
})

// Another user's launch dir is handed to a uid of no one: only root can.
t.test('one early removal per user at a time; the second run goes by its revoke as before', { skip: process.getuid?.() !== 0 ? 'needs root (chown)' : false }, async t => {
  const f = await hpcFixture(t)
  const a = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  const b = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  const theirs = join(f.dir, 'alice-launch')
  mkdirSync(theirs)
  chownSync(theirs, 1234, 1234)
  const other = await f.runs.create(caller('alice', { uid: 1234, gid: 1234 }), { mode: 'arm', launchDir: theirs })
  f.memory.options.delayMs = 100
  const early = (rec: RunRecord): void => { f.runs.revoker.startEarly(rec) }
  await Promise.all([a, b, other].map(async r => await f.runs.endWithoutRevoke(r.runId, 'completed', 'x', {}, undefined, early)))
  t.same([revokes(f, a.runId), revokes(f, b.runId), revokes(f, other.runId)], [1, 0, 1], 'root\'s second end started nothing; another user\'s did')
  for (const r of [a, b, other]) t.equal((await f.runs.revoker.revoke(r.runId, false)).targets.hpc?.state, 'revoked')
  t.same([revokes(f, a.runId), revokes(f, b.runId), revokes(f, other.runId)], [1, 1, 1], 'each removed exactly once')
})

t.test('the monitor starts no early removal while the user\'s revoke lane is busy: one removal of theirs at a time', async t => {
  const f = await hpcFixture(t)
  f.runs.setHost({ stop: async () => {}, holds: () => false })
  // A launched run's removal always goes by the lane (its command is stopped first); the armed run ends in the same
  // pass, right after it, while the lane is removing the launched run's dir.
  const launched = await f.runs.create(caller(), { mode: 'launch', launchDir: f.launchDir, command: ['true'] })
  const armed = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  for (const [run, pid] of [[launched, 4242], [armed, 4243]] as const) {
    f.probes.alive.add(pid)
    await f.runs.markStarted(run.runId, { pid })
    f.probes.alive.delete(pid)
  }
  f.memory.options.delayMs = 200
  // Dead readings on two passes in a row end a run (run-check.ts); tick waits for the revokes the pass queued.
  for (let i = 0; i < 2; i++) await f.monitor.tick()
  t.same([f.ledger.get(launched.runId)?.state, f.ledger.get(armed.runId)?.state], ['killed', 'killed'], 'both ended in the pass')
  t.same([revokes(f, launched.runId), revokes(f, armed.runId)], [1, 1], 'each removed once')
  t.equal(f.mostAtOnce(), 1, 'never two removals of the user at once')
  t.same([f.ledger.get(launched.runId)?.targets.hpc?.state, f.ledger.get(armed.runId)?.targets.hpc?.state], ['revoked', 'revoked'])
})

t.test('the monitor\'s end of an armed run starts its removal before the end is on disk', async t => {
  const f = await hpcFixture(t)
  const armed = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  f.probes.alive.add(4243)
  await f.runs.markStarted(armed.runId, { pid: 4243 })
  f.probes.alive.delete(4243)
  for (let i = 0; i < 2; i++) await f.monitor.tick()
  t.equal(f.ledger.get(armed.runId)?.targets.hpc?.state, 'revoked')
  t.same(f.diskStateAtRemoval, ['running'], 'removed while the disk still said running: the early path, not the lane')
  t.equal(revokes(f, armed.runId), 1)
})
