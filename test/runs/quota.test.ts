// Live runs per user (SPEC 11): the pure rule, and the limit as every door into the lifecycle meets it (RunManager.create
// serves POST /runs, launch and the watcher's auto-runs alike).
import t from 'tap'
import { chmodSync } from 'node:fs'
import { mayStart, ownsRun } from '../../daemon/runs/quota.js'
import { liveRunsOf } from '../../daemon/store/live-runs.js'
import type { RunState } from '../../daemon/types.js'
import { caller, runsFixture } from '../helpers/runs.js'
import { codeOf } from '../helpers/code-of.js'

t.test('mayStart and liveRunsOf, by table', async t => {
  const cases: Array<[number, number, number, boolean, boolean]> = [
    // live, pending, limit, admin -> may start
    [0, 0, 1, false, true],
    [1, 0, 1, false, false],
    [0, 1, 1, false, false],
    [199, 0, 200, false, true],
    [199, 1, 200, false, false],
    [500, 0, 200, true, true]
  ]
  for (const [live, pending, limit, admin, want] of cases) t.equal(mayStart(live, pending, limit, admin), want, `${live}+${pending} of ${limit}, admin ${admin}`)
  const runs: Array<{ uid: number, state: RunState }> = [
    { uid: 1, state: 'armed' }, { uid: 1, state: 'running' }, { uid: 1, state: 'completed' }, { uid: 1, state: 'expired' },
    { uid: 2, state: 'armed' }
  ]
  t.equal(liveRunsOf(runs, 1), 2, 'terminal runs do not count')
  t.equal(liveRunsOf(runs, 2), 1)
  t.equal(liveRunsOf(runs, 3), 0)
})

t.test('a user at liveRunsPerUser gets NFS_ERR_LIMIT from every kind of run; others and admins go on', async t => {
  const f = await runsFixture(t, { limits: { liveRunsPerUser: 2 } })
  chmodSync(f.launchDir, 0o777) // launch dirs of several test uids
  const bob = caller('bob', { uid: 60_001 })
  const alice = caller('alice', { uid: 60_002 })
  const a = await f.runs.create(bob, { mode: 'arm', launchDir: f.launchDir })
  await f.runs.create(bob, { mode: 'run', launchDir: f.launchDir })
  const recorded = f.ledger.all().length
  const placed = f.memory.placed.size
  for (const mode of ['arm', 'run', 'auto'] as const) {
    let err: unknown
    try {
      await f.runs.create(bob, { mode, launchDir: f.launchDir })
    } catch (e) {
      err = e
    }
    t.match(err, { code: 'NFS_ERR_LIMIT', statusCode: 429 }, `bob's ${mode} over the limit`)
  }
  t.equal(f.ledger.all().length, recorded, 'a refused run leaves nothing in the ledger')
  t.equal(f.memory.placed.size, placed, 'and nothing in a target')
  t.ok(await f.runs.create(alice, { mode: 'arm', launchDir: f.launchDir }), 'alice still arms')
  for (let i = 0; i < 3; i++) await f.runs.create(caller('root', { isAdmin: true, uid: 0 }), { mode: 'arm', launchDir: f.launchDir })
  t.pass('an admin is not limited')
  await f.runs.revoke(bob, a.runId)
  t.ok(await f.runs.create(bob, { mode: 'arm', launchDir: f.launchDir }), 'a slot freed by an ended run is usable again')
})

t.test('a burst of parallel creates cannot overshoot the limit', async t => {
  const f = await runsFixture(t, { limits: { liveRunsPerUser: 3 } })
  chmodSync(f.launchDir, 0o777)
  const bob = caller('bob', { uid: 60_001 })
  const results = await Promise.allSettled(Array.from({ length: 8 }, () => f.runs.create(bob, { mode: 'arm', launchDir: f.launchDir })))
  t.equal(results.filter(r => r.status === 'fulfilled').length, 3)
  t.same(results.filter(r => r.status === 'rejected').map(r => (r as PromiseRejectedResult).reason.code), Array(5).fill('NFS_ERR_LIMIT'))
  t.equal(f.ledger.all().filter(r => r.uid === bob.uid && r.state === 'armed').length, 3)
  // A create that fails for another reason gives its slot back.
  await f.runs.revoke(bob, f.ledger.all()[0]!.runId)
  t.equal(await codeOf(f.runs.create(bob, { mode: 'arm', launchDir: 'relative' })), 'NFS_ERR_INVALID_PATH')
  t.ok(await f.runs.create(bob, { mode: 'arm', launchDir: f.launchDir }), 'the failed create did not keep a slot')
})

t.test('a name whose uid changed is another user: the old account\'s runs are not the new one\'s', async t => {
  t.equal(ownsRun({ user: 'alice', uid: 1001 }, { user: 'alice', uid: 1001 }), true)
  t.equal(ownsRun({ user: 'alice', uid: 1077 }, { user: 'alice', uid: 1001 }), false, 'same name, new uid')
  t.equal(ownsRun({ user: 'bob', uid: 1001 }, { user: 'alice', uid: 1001 }), false, 'same uid, other name (renamed)')
  const f = await runsFixture(t)
  chmodSync(f.launchDir, 0o777)
  const old = caller('alice', { uid: 60_010 })
  const recreated = caller('alice', { uid: 60_011 })
  const run = await f.runs.create(old, { mode: 'arm', launchDir: f.launchDir })
  t.equal(await codeOf(Promise.resolve().then(() => f.runs.get(recreated, run.runId))), 'NFS_ERR_RUN_NOT_FOUND', 'show')
  t.equal(await codeOf(f.runs.revoke(recreated, run.runId)), 'NFS_ERR_RUN_NOT_FOUND', 'revoke')
  t.equal(await codeOf(f.runs.finish(recreated, run.runId, { exitCode: 0 })), 'NFS_ERR_RUN_NOT_FOUND', 'finish')
  t.same(await f.runs.list(recreated, true), [], 'list')
  t.equal((await f.runs.list(old, true)).length, 1, 'the account that started it still sees it')
})
