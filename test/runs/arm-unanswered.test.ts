// An arm answered NFS_ERR_CLUSTER_UNAVAILABLE whose intent etcd committed all the same (issue 16, review 4), on a real
// 3-member etcd: the insert's first try is applied and its answer lost, and the quorum goes before the client tries
// again and before the read-back (own-write.ts) can tell, so the caller hears "unavailable". Once quorum returns, the
// row is in the ledger: this node's (the owner key was in the insert's transaction), armed, its target `provisioning`,
// counted against the user's liveRunsPerUser on every node. The monitor's next pass must end it as failed, with a
// reason `runs show` prints, and revoke it; the user can then arm again.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Membership } from '../../daemon/cluster/membership.js'
import { EtcdOwnership } from '../../daemon/cluster/ownership.js'
import { INTENT_UNANSWERED } from '../../daemon/runs/monitor.js'
import { openEtcdRunLedger, type EtcdRunLedger } from '../../daemon/store/etcd/etcd-run-ledger.js'
import type { RunRecord } from '../../daemon/types.js'
import { startEtcdNamespace } from '../helpers/etcd-cluster.js'
import { loseAnswers } from '../helpers/lost-answer.js'
import { requireEtcd } from '../helpers/requires.js'
import { caller, runsFixture } from '../helpers/runs.js'
import { waitFor } from '../helpers/wait.js'

requireEtcd(t)

t.test('an arm answered unavailable whose intent committed is ended failed by the next pass', async t => {
  const etcd = await startEtcdNamespace(t)
  if (etcd === null) return
  const conn = etcd.connect()
  const lose = loseAnswers(conn.client)
  const stateDir = mkdtempSync(join(tmpdir(), 'nfs-unanswered-'))
  t.teardown(() => { rmSync(stateDir, { recursive: true, force: true }) })
  // One cluster node as the daemon's backend builds it: membership, ownership, the etcd ledger under the lifecycle.
  const membership = await Membership.join({ client: conn.client, ns: conn.ns, node: 'a', host: 'vm', ttlSeconds: 10, stateDir, version: 'test' })
  let ledger: EtcdRunLedger | null = null
  const ownership = await EtcdOwnership.open({ ns: conn.ns, membership, runs: () => ledger?.entries() ?? [] })
  ledger = await openEtcdRunLedger({ ns: conn.ns, node: 'a', owner: { claimOp: id => ownership.claimOp(id), key: id => `own/${id}`, node: 'a' } })
  t.teardown(async () => { await ownership.close(); await membership.close({ revoke: true }) })
  const f = await runsFixture(t, { ledger, ownership, host: 'vm', limits: { liveRunsPerUser: 1 } })
  const reader = etcd.connect()
  const inEtcd = async (runId: string): Promise<RunRecord> => JSON.parse(await reader.ns.get(`runs/${runId}`).string() ?? 'null') as RunRecord

  const alice = caller('alice')
  // The insert is the one transaction that puts the user's arm sequence (etcd-run-ledger.ts ARMS).
  lose.loseThen(`uarms/${alice.uid}`, async () => { await etcd.cluster.kill(1); await etcd.cluster.kill(2) })
  const answer = await f.runs.create(alice, { mode: 'arm', launchDir: f.launchDir }).then(() => 'armed', (err: unknown) => err)
  t.equal(lose.lost, 1, 'the intent reached etcd and its answer was lost')
  t.match(answer, { code: 'NFS_ERR_CLUSTER_UNAVAILABLE' }, 'the arm is answered unavailable')

  await etcd.cluster.restart(1)
  await etcd.cluster.restart(2)
  await etcd.cluster.healthy()
  // The client may still hold the killed members' connections as broken for a moment.
  await waitFor('a fresh read of the ledger', async () => await f.ledger.settle().then(() => true, () => false), 30_000)
  const left = f.ledger.all().filter(r => r.uid === alice.uid)
  t.equal(left.length, 1, 'the intent committed all the same')
  const run = left[0]!
  t.equal(run.targets.memory?.state, 'provisioning', 'with its target never recorded as placed')
  await t.rejects(f.runs.create(alice, { mode: 'arm', launchDir: f.launchDir }), { code: 'NFS_ERR_LIMIT' }, 'and it counts against liveRunsPerUser')

  // The node owns it again once its keepalives are answered after the outage.
  await waitFor('the node to own the run again', () => ownership.owns(f.ledger.get(run.runId)!), 30_000)
  await f.monitor.tick()
  const ended = await inEtcd(run.runId)
  t.equal(ended.state, 'failed', 'the next pass ends it as failed')
  t.equal(ended.endReason, INTENT_UNANSWERED, 'saying why')
  t.equal(ended.targets.memory?.state, 'revoked', 'and revokes it')
  t.notOk(f.memory.placed.has(run.runId), 'nothing of it is placed')
  const again = await f.runs.create(alice, { mode: 'arm', launchDir: f.launchDir })
  t.equal((await inEtcd(again.runId)).state, 'armed', 'the user can arm again')
})
