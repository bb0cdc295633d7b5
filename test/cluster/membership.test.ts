// Node membership on a real 3-member etcd: unique node names, re-attaching to the lease across a restart within the
// TTL (no takeover), leaving for good (the lease revoked, nodes/<name> gone at once), and self-fencing: a node whose
// keepalives go unanswered for TTL - 2 s stops acting as an owner until one is answered again.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Membership } from '../../daemon/cluster/membership.js'
import { connectEtcd } from '../../daemon/store/etcd/etcd-client.js'
import { startEtcdCluster } from '../helpers/etcd-cluster.js'
import { requireEtcd } from '../helpers/requires.js'

requireEtcd(t)

t.test('membership', async t => {
  const cluster = await startEtcdCluster(t)
  if (cluster === null) return
  const prefix = `/nfs-test/${randomBytes(6).toString('hex')}/`
  const conn = connectEtcd({ endpoints: cluster.endpoints, prefix })
  t.teardown(() => { conn.close() })
  const stateA = mkdtempSync(join(tmpdir(), 'nfs-member-a-'))
  const stateB = mkdtempSync(join(tmpdir(), 'nfs-member-b-'))
  let offset = 0
  const now = (): number => Date.now() + offset
  const join1 = async (node: string, stateDir: string): Promise<Membership> =>
    await Membership.join({ client: conn.client, ns: conn.ns, node, ttlSeconds: 6, stateDir, version: '0.0.0-test', now })
  const nodes = async (): Promise<string[]> => (await conn.ns.getAll().prefix('nodes/').keys()).sort()

  const a = await join1('login1', stateA)
  t.equal(statSync(join(stateA, 'cluster-lease.json')).mode & 0o777, 0o600, 'the lease id is kept 0600')
  await t.rejects(join1('login1', stateB), { code: 'NFS_ERR_CONFIG' }, 'a live node name is refused to another daemon')
  const b = await join1('login2', stateB)
  t.same(await nodes(), ['nodes/login1', 'nodes/login2'])

  await a.close()
  const a2 = await join1('login1', stateA)
  t.equal(a2.leaseId, a.leaseId, 'a restart within the TTL re-attaches to the same lease')
  t.same(await nodes(), ['nodes/login1', 'nodes/login2'], 'and the node never left')

  t.ok(a2.unfenced, 'a fresh member may act as owner')
  offset += 2000
  t.ok(a2.unfenced, 'TTL - 2 s is not yet up')
  offset += 2500
  t.notOk(a2.unfenced, 'past TTL - 2 s without an answered keepalive: fenced')
  // The next keepalive (every TTL/3 = 2 s) is answered and lifts the fence.
  for (let i = 0; i < 50 && !a2.unfenced; i++) await new Promise(resolve => setTimeout(resolve, 100))
  t.ok(a2.unfenced, 'an answered keepalive lifts it')

  await b.close({ revoke: true })
  t.same(await nodes(), ['nodes/login1'], 'leaving for good removes the node at once')
  await a2.close({ revoke: true })
})

// CLUSTER.md "Restart within the TTL": a lease re-attached with little left is renewed at once by the join itself, not
// at the first regular keepalive TTL/3 later: a daemon's start-up (replicas, reconcile) takes longer than the rest of a
// lease re-attached late, and the others would then adopt every run of a node that only restarted.
t.test('a re-attached lease is renewed at once', async t => {
  const cluster = await startEtcdCluster(t)
  if (cluster === null) return
  const prefix = `/nfs-test/${randomBytes(6).toString('hex')}/`
  const conn = connectEtcd({ endpoints: cluster.endpoints, prefix })
  t.teardown(() => { conn.close() })
  const stateDir = mkdtempSync(join(tmpdir(), 'nfs-member-r-'))
  const TTL = 6
  const join1 = async (): Promise<Membership> => await Membership.join({ client: conn.client, ns: conn.ns, node: 'login3', ttlSeconds: TTL, stateDir, version: '0.0.0-test' })
  const left = async (leaseId: string): Promise<number> => Number((await conn.client.leaseClient.leaseTimeToLive({ ID: leaseId })).TTL)

  const first = await join1()
  await first.close()
  // The daemon is gone (kill -9): its lease counts down; the restart comes late, with 2 s or less left.
  let before = await left(first.leaseId)
  while (before > 2) {
    await new Promise(resolve => setTimeout(resolve, 100))
    before = await left(first.leaseId)
  }
  const again = await join1()
  t.teardown(async () => { await again.close({ revoke: true }) })
  const after = await left(again.leaseId)
  t.comment(`lease TTL left before the re-attach ${before} s, right after the join ${after} s (TTL ${TTL} s)`)
  t.equal(again.leaseId, first.leaseId, 're-attached to the same lease')
  t.ok(after > before, 'the join renewed it at once')
  // Past what was left, and before the first regular keepalive would have come: the node is still there.
  await new Promise(resolve => setTimeout(resolve, (before + 0.5) * 1000))
  t.ok(await left(again.leaseId) > 0, 'the lease lives on')
  t.same(await conn.ns.getAll().prefix('nodes/').keys(), ['nodes/login3'], 'and so does the node')
})
