// Ownership as the lifecycle uses it (CLUSTER.md "Ownership", "Adopting is not revoking"): which end signals a node
// may read (reach.ts, a table), and the monitor, the revoker, the start-up reconcile, the sweep and the PTY host's
// adopt with a RunOwnership that owns only some runs: another node's runs are left alone, adopted runs (owned here,
// head on another host) end only on what this node can see.
import t from 'tap'
import { pino } from 'pino'
import { PtyHost } from '../../daemon/pty/host.js'
import { endSignals, type EndSignal } from '../../daemon/runs/liveness/reach.js'
import { HOST_DEAD_REASON } from '../../daemon/runs/host-dead.js'
import type { RunOwnership } from '../../daemon/runs/ownership.js'
import { SecretValue } from '../../daemon/secret-value.js'
import type { RunRecord } from '../../daemon/types.js'
import { caller, runsFixture, type RunsFixture, type Teardown } from '../helpers/runs.js'

t.test('reach: what a node may read to end a run', async t => {
  const shared: EndSignal[] = ['history', 'log', 'slurm', 'ttl']
  const all: EndSignal[] = [...shared, 'pid', 'lock', 'launched']
  const table: Array<[string, Pick<RunRecord, 'host' | 'slurmJobId'>, boolean, EndSignal[]]> = [
    ['another node\'s run, head here: nothing', { host: 'login1', slurmJobId: null }, false, []],
    ['another node\'s run, head elsewhere: nothing', { host: 'login2', slurmJobId: '42' }, false, []],
    ['mine, head here: everything', { host: 'login1', slurmJobId: null }, true, all],
    ['mine, head here under another spelling', { host: 'LOGIN1.cluster.example', slurmJobId: null }, true, all],
    ['mine, a Slurm head armed here: everything (the job decides beside them)', { host: 'login1', slurmJobId: '42' }, true, all],
    ['adopted, local head on another host: shared files, TTL, and the host\'s death', { host: 'login2', slurmJobId: null }, true, [...shared, 'hostDead']],
    ['adopted, Slurm head: shared files, TTL and Slurm only', { host: 'login2', slurmJobId: '42' }, true, shared],
    ['adopted, a host whose name only starts like ours', { host: 'login10', slurmJobId: null }, true, [...shared, 'hostDead']]
  ]
  for (const [name, run, owns, want] of table) t.same([...endSignals(run, { host: 'login1', owns })].sort(), [...want].sort(), name)
})

interface Split { others: Set<string>, dead: Set<string>, ownership: RunOwnership }

/** Owns every run but those in `others`; a host in `dead` has had no live node for hostDeadAfterSeconds. */
function split (): Split {
  const others = new Set<string>()
  const dead = new Set<string>()
  return { others, dead, ownership: { node: 'a', owns: r => !others.has(r.runId), hostAlive: h => !dead.has(h), adoptOrphans: async () => [] } }
}

async function fixture (t: Teardown): Promise<RunsFixture & Split> {
  const s = split()
  const f = await runsFixture(t, { ownership: s.ownership })
  await f.store.createSecret('user:root', 'TOKEN', new SecretValue('v'), 'root')
  return { ...f, ...s }
}

/** Make the run's head live on another host (as after an adoption), through the ledger as another node would write it. */
async function moveHead (f: RunsFixture, runId: string, host: string): Promise<void> {
  const run = f.ledger.get(runId)!
  await f.ledger.update(runId, run.version, r => ({ ...r, host }))
}

t.test('the monitor ends and revokes only its own runs: TTL, dead pid, Slurm', async t => {
  const f = await fixture(t)
  const mineArmed = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, ttlSeconds: 60 })
  const theirsArmed = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, ttlSeconds: 60 })
  const mineRun = await f.runs.create(caller(), { mode: 'run', launchDir: f.launchDir, pid: 4242 })
  const theirsRun = await f.runs.create(caller(), { mode: 'run', launchDir: f.launchDir, pid: 4343 })
  f.others.add(theirsArmed.runId)
  f.others.add(theirsRun.runId)
  f.now.t += 61_000
  await f.monitor.tick()
  await f.monitor.tick()
  t.equal(f.ledger.get(mineArmed.runId)?.state, 'expired', 'my armed run expired')
  t.equal(f.ledger.get(mineRun.runId)?.state, 'killed', 'my run with a dead pid ended')
  t.notOk(f.memory.placed.has(mineArmed.runId) || f.memory.placed.has(mineRun.runId), 'and both were revoked')
  t.equal(f.ledger.get(theirsArmed.runId)?.state, 'armed', 'another node\'s expired run is left to it')
  t.equal(f.ledger.get(theirsRun.runId)?.state, 'running', 'another node\'s run with a dead pid is left to it')
  t.ok(f.memory.placed.has(theirsArmed.runId) && f.memory.placed.has(theirsRun.runId), 'their secrets untouched')
  t.notOk(f.memory.calls.some(c => c.op === 'revoke' && (c.runId === theirsArmed.runId || c.runId === theirsRun.runId)), 'no revoke of theirs was tried')
})

t.test('Slurm is asked only about this node\'s runs', async t => {
  const f = await fixture(t)
  f.probes.slurm = 'running'
  const mine = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, slurmJobId: '101' })
  const theirs = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, slurmJobId: '202' })
  f.others.add(theirs.runId)
  f.probes.slurmAsked.length = 0
  await f.monitor.tick()
  t.same(f.probes.slurmAsked.flat(), ['101'], 'only my run\'s job')
  t.ok(f.ledger.get(mine.runId))
})

t.test('an end recorded on a node that does not own the run: targets untouched there, revoked by the owner', async t => {
  const f = await fixture(t)
  const run = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  f.others.add(run.runId)
  const ended = new Promise<void>(resolve => {
    const off = f.ledger.onChange(c => { if (c.runId === run.runId && f.ledger.get(run.runId)?.state === 'killed') { off(); resolve() } })
  })
  // The explicit revoke answers once the owner has revoked (or its wait is over): it is pending meanwhile.
  const answer = f.runs.revoke(caller(), run.runId)
  await ended
  const rec = f.ledger.get(run.runId)!
  t.equal(rec.targets.memory?.state, 'revoking', 'the end is recorded, due for its owner')
  t.ok(f.memory.placed.has(run.runId), 'the non-owner did not touch the target')
  t.same(f.runs.revoker.due(new Date(f.now.t)), [], 'and does not count it as its due revoke')
  await f.monitor.tick()
  t.ok(f.memory.placed.has(run.runId), 'nor does its monitor revoke it')
  // The run's owner is this node again (say the other one's lease expired and this one adopted it).
  f.others.delete(run.runId)
  await f.monitor.tick()
  t.notOk(f.memory.placed.has(run.runId), 'the owner revokes it')
  const answered = await answer
  t.equal(answered.state, 'killed')
  t.equal(answered.targets.memory?.state, 'revoked', 'and the caller on the other node is answered with the owner\'s revoke')
})

t.test('a non-owner\'s revoke whose owner does not answer in time: the record as it is', async t => {
  const s = split()
  const f = await runsFixture(t, { ownership: s.ownership, ownerRevokeWaitMs: 50 })
  const run = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  s.others.add(run.runId)
  const answered = await f.runs.revoke(caller(), run.runId)
  t.equal(answered.state, 'killed')
  t.equal(answered.targets.memory?.state, 'revoking', 'still its owner\'s to revoke')
  t.ok(f.memory.placed.has(run.runId))
})

t.test('a revoke that finds the run no longer this node\'s stops before the target', async t => {
  const f = await fixture(t)
  const run = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  await f.runs.endWithoutRevoke(run.runId, 'killed', 'test')
  f.others.add(run.runId)
  const after = await f.runs.revoker.revoke(run.runId)
  t.equal(after.targets.memory?.state, 'revoking')
  t.ok(f.memory.placed.has(run.runId))
})

t.test('start-up reconcile ends only its own interrupted provisions', async t => {
  const f = await fixture(t)
  const mine = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  const theirs = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  for (const id of [mine.runId, theirs.runId]) {
    const r = f.ledger.get(id)!
    await f.ledger.update(id, r.version, x => { x.targets.memory!.state = 'provisioning'; return x })
  }
  f.others.add(theirs.runId)
  await f.monitor.reconcile()
  t.equal(f.ledger.get(mine.runId)?.state, 'failed', 'mine: interrupted, ended')
  t.equal(f.ledger.get(theirs.runId)?.state, 'armed', 'theirs may be provisioning right now on its node')
  t.equal(f.ledger.get(theirs.runId)?.targets.memory?.state, 'provisioning')
})

t.test('the sweep leaves a run another node is revoking', async t => {
  const f = await fixture(t)
  const run = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  await f.runs.endWithoutRevoke(run.runId, 'killed', 'test')
  f.others.add(run.runId)
  await f.runs.sweep()
  t.ok(f.memory.placed.has(run.runId), 'its traces stay: its owner revokes them')
  f.others.delete(run.runId)
  await f.runs.revoker.revoke(run.runId)
  t.notOk(f.memory.placed.has(run.runId))
})

t.test('an adopted run (owned here, head on another host) ends only on what this node sees', async t => {
  const f = await fixture(t)
  // Nothing is alive by the fake probes, no lock is held: on its own host this run would be killed.
  const run = await f.runs.create(caller(), { mode: 'run', launchDir: f.launchDir, pid: 777 })
  await moveHead(f, run.runId, 'login9')
  f.probes.lockHeld = false
  for (let i = 0; i < 3; i++) await f.monitor.tick()
  t.equal(f.ledger.get(run.runId)?.state, 'running', 'a pid and lock read in this host\'s /proc say nothing of it')
  t.ok(f.memory.placed.has(run.runId))

  // The shared launch dir's history says it ended: that is visible from here.
  f.probes.observation = { history: { status: 'OK', sessionId: run.sessionId, runName: 'x', index: 0 } as never, historyCount: 1, log: null, pidFile: null }
  await f.monitor.tick()
  t.equal(f.ledger.get(run.runId)?.state, 'completed', 'ended on the history line')
  t.notOk(f.memory.placed.has(run.runId), 'and revoked')
})

t.test('an adopted run whose host is dead (hostAlive false) ends as killed; alive: kept', async t => {
  const f = await fixture(t)
  const local = await f.runs.create(caller(), { mode: 'run', launchDir: f.launchDir, pid: 777 })
  const slurm = await f.runs.create(caller(), { mode: 'run', launchDir: f.launchDir, slurmJobId: '9' })
  f.probes.slurm = 'running'
  for (const id of [local.runId, slurm.runId]) await moveHead(f, id, 'login9')
  await f.monitor.tick()
  t.equal(f.ledger.get(local.runId)?.state, 'running', 'host alive: kept')
  f.dead.add('login9')
  await f.monitor.tick()
  const ended = f.ledger.get(local.runId)!
  t.equal(ended.state, 'killed')
  t.equal(ended.endReason, HOST_DEAD_REASON)
  t.notOk(f.memory.placed.has(local.runId), 'revoked')
  t.equal(f.ledger.get(slurm.runId)?.state, 'running', 'a Slurm head is Slurm\'s to end')
})

t.test('the PTY host adopts only launched runs of this host that this node owns', async t => {
  const f = await fixture(t)
  const ids: string[] = []
  for (const pid of [11, 12, 13]) {
    const { runId } = await f.runs.create(caller(), { mode: 'run', launchDir: f.launchDir, pid })
    const r = f.ledger.get(runId)!
    await f.ledger.update(runId, r.version, x => ({ ...x, mode: 'launch' }))
    ids.push(runId)
  }
  const [mine, theirs, elsewhere] = ids as [string, string, string]
  f.others.add(theirs)
  await moveHead(f, elsewhere, 'login9')
  t.same(f.runs.localHeads().map(r => r.runId), [mine], 'heads here and mine')
  const host = new PtyHost({ runs: f.runs, config: f.config, logger: pino({ level: 'silent' }), probes: f.probes, daemonUid: process.getuid!(), clock: () => new Date(f.now.t), systemdRun: null, pollMs: 3_600_000 })
  t.teardown(() => host.close())
  t.equal(await host.adopt(), 1, 'one adopted')
  // Its command is gone (the fake probes see no process): the adopt ended it; the others are not this host's to end.
  t.equal(f.ledger.get(mine)?.state, 'killed')
  t.equal(f.ledger.get(theirs)?.state, 'running', 'another node\'s launched run is left to it')
  t.equal(f.ledger.get(elsewhere)?.state, 'running', 'a command on another host is not this host\'s to poll')
})

t.test('prune: this node\'s old runs, and those no node owns any more; never another live node\'s', async t => {
  const f = await fixture(t)
  const owner = new Map<string, string | null>()
  f.ownership.ownerOf = id => owner.has(id) ? owner.get(id)! : 'a'
  const ids: string[] = []
  for (let i = 0; i < 3; i++) {
    const { runId } = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
    await f.runs.revoke(caller(), runId)
    ids.push(runId)
  }
  const [mine, theirs, orphan] = ids as [string, string, string]
  f.others.add(theirs)
  f.others.add(orphan)
  owner.set(theirs, 'b')
  owner.set(orphan, null)
  f.now.t += (f.config.runs.retentionDays + 1) * 86_400_000
  await f.monitor.tick()
  t.equal(f.ledger.get(mine), undefined, 'mine pruned')
  t.equal(f.ledger.get(orphan), undefined, 'an owner-less one pruned')
  t.ok(f.ledger.get(theirs), 'another node\'s kept for it')
})
