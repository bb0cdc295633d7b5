// Runs tied to Slurm jobs, at the orchestration level (memory target, scripted probes): the job-owner rule, the
// bind of an sbatch-hosted head's run to its job and its race with the TTL, and one Slurm question per pass.
import t from 'tap'
import { chmodSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { bindToJob, isExpired } from '../../daemon/runs/run-rules.js'
import type { RunRecord } from '../../daemon/types.js'
import { armedRecord, caller, runsFixture } from '../helpers/runs.js'
import { codeOf } from '../helpers/code-of.js'

t.test('a slurmJobId that is not a job of the caller is refused before anything is placed', async t => {
  const f = await runsFixture(t)
  f.probes.slurm = 'running'
  f.probes.slurmOwnerUid = process.getuid!() + 1
  t.equal(await codeOf(f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, slurmJobId: '42' })), 'NFS_ERR_FORBIDDEN', 'another user\'s job')
  f.probes.slurmOwnerUid = null
  t.equal(await codeOf(f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, slurmJobId: '424242' })), 'NFS_ERR_FORBIDDEN', 'a job Slurm does not know')
  t.equal(f.ledger.all().length, 0, 'no run recorded')
  t.equal(f.memory.placed.size, 0, 'nothing placed')
  f.probes.slurmOwnerUid = process.getuid!()
  const mine = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, slurmJobId: '42' })
  t.equal(f.ledger.get(mine.runId)?.slurmJobId, '42', 'the caller\'s own job is taken')
})

const base = armedRecord(['memory'])
const rec = (over: Partial<RunRecord>): RunRecord => ({ ...base, ...over })

t.test('bindToJob table', async t => {
  const bound = bindToJob(rec({}), '77')
  t.same([bound?.slurmJobId, bound?.expiresAt], ['77', null], 'armed: tied, TTL cleared')
  t.same(bindToJob(rec({ state: 'running', expiresAt: null }), '77')?.slurmJobId, '77', 'a head that started before the bind')
  t.equal(bindToJob(rec({ slurmJobId: '77', expiresAt: null }), '77'), null, 'again: no change')
  t.throws(() => bindToJob(rec({ slurmJobId: '76', expiresAt: null }), '77'), { code: 'NFS_ERR_CONFLICT' })
  for (const state of ['expired', 'completed', 'killed'] as const) t.throws(() => bindToJob(rec({ state }), '77'), { code: 'NFS_ERR_RUN_STATE' }, state)
})

t.test('a bound run has no TTL: it lives while its job is pending or running and ends once when the job is gone', async t => {
  const f = await runsFixture(t)
  const created = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, ttlSeconds: 120 })
  f.probes.slurm = 'pending'
  const v = await f.runs.bindSlurmJob(caller(), created.runId, '42')
  t.same([v.slurmJobId, v.expiresAt], ['42', null])
  f.now.t += 3 * 86_400_000
  await f.monitor.tick()
  t.equal(f.ledger.get(created.runId)?.state, 'armed', 'pending for days: kept')
  f.probes.slurm = 'running'
  await f.monitor.tick()
  t.equal(f.ledger.get(created.runId)?.state, 'armed')
  t.ok(f.memory.placed.has(created.runId))
  f.probes.slurm = 'gone'
  await f.monitor.tick()
  t.equal(f.ledger.get(created.runId)?.state, 'expired', 'the job ended before Nextflow started')
  t.notOk(f.memory.placed.has(created.runId))
  t.equal(await codeOf(f.runs.bindSlurmJob(caller(), created.runId, '42')), 'NFS_ERR_RUN_STATE', 'an ended run cannot be bound')
})

t.test('bind: only the run\'s owner, only to a job of theirs', async t => {
  const f = await runsFixture(t)
  const created = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  t.equal(await codeOf(f.runs.bindSlurmJob(caller('bob', { uid: 4242 }), created.runId, '42')), 'NFS_ERR_RUN_NOT_FOUND', 'another user\'s run')
  t.equal(await codeOf(f.runs.bindSlurmJob(caller('admin', { uid: 4243, isAdmin: true }), created.runId, '42')), 'NFS_ERR_FORBIDDEN', 'an admin cannot tie a user\'s run to a job')
  f.probes.slurmOwnerUid = 4242
  t.equal(await codeOf(f.runs.bindSlurmJob(caller(), created.runId, '42')), 'NFS_ERR_FORBIDDEN', 'a job of another user')
  t.equal(f.ledger.get(created.runId)?.slurmJobId, null)
})

t.test('the TTL expiry and the bind race: the expiry re-checks the TTL in its own write, so a bound run is never expired', async t => {
  const f = await runsFixture(t)
  const created = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, ttlSeconds: 120 })
  f.now.t += 121_000
  const now = new Date(f.now.t)
  // The monitor read the record (expired) before the bind landed; its end arrives after.
  t.ok(isExpired(f.ledger.get(created.runId)!, now))
  f.probes.slurm = 'pending'
  await f.runs.bindSlurmJob(caller(), created.runId, '42')
  const after = await f.runs.end(created.runId, 'expired', 'no start seen within the TTL', {}, r => isExpired(r, now))
  t.equal(after.state, 'armed', 'the bind won: the expiry does not apply')
  t.ok(f.memory.placed.has(created.runId), 'and the secrets stay')
})

t.test('an end that no longer applies revokes nothing (a run started between the read and the end)', async t => {
  const f = await runsFixture(t)
  const created = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  await f.runs.markStarted(created.runId, { runName: 'happy_euler' })
  const after = await f.runs.end(created.runId, 'expired', 'no start seen within the TTL')
  t.equal(after.state, 'running')
  t.equal(after.targets.memory?.state, 'provisioned')
  t.ok(f.memory.placed.has(created.runId))
})

t.test('one Slurm question per pass for all jobs, and a stuck Slurm delays no other run', async t => {
  const f = await runsFixture(t)
  f.probes.slurm = 'running'
  const ids = new Set<string>()
  for (let i = 0; i < 300; i++) {
    const id = String(100 + (i % 30))
    ids.add(id)
    // an admin, so the per-user limit of live runs (200) stays out of this test
    await f.runs.create(caller('root', { isAdmin: true }), { mode: 'arm', launchDir: f.launchDir, slurmJobId: id, ttlSeconds: 7 * 86400 })
  }
  await f.monitor.tick()
  await f.monitor.tick()
  t.equal(f.probes.slurmAsked.length, 2, 'one question per pass')
  t.same(new Set(f.probes.slurmAsked[0]), ids, 'about every job of every live run')

  // Slurm stops answering: the question never returns (the real one is killed at its deadline).
  let asked = 0
  let answer: (ok: boolean) => void = () => {}
  f.probes.slurmRefresh = async () => { asked++; return await new Promise<boolean>(resolve => { answer = resolve }) }
  const aliceDir = join(f.dir, 'alice')
  mkdirSync(aliceDir, { mode: 0o777 })
  chmodSync(aliceDir, 0o777)
  const alice = await f.runs.create(caller('alice', { uid: 4321 }), { mode: 'arm', launchDir: aliceDir, ttlSeconds: 2 })
  f.now.t += 3000
  await f.monitor.tick()
  await f.monitor.tick()
  t.equal(f.ledger.get(alice.runId)?.state, 'expired', 'the pass did not wait for Slurm')
  t.equal(asked, 1, 'no second question while one is out')
  t.equal(f.ledger.all().filter(r => r.state === 'armed').length, 300, 'the Slurm runs keep their last known state')
  answer(false)
})
