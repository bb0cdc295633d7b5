// Membership when etcd misbehaves, on a real 3-member etcd: a lease that is gone while the daemon lives.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Membership } from '../../daemon/cluster/membership.js'
import { connectEtcd } from '../../daemon/store/etcd/etcd-client.js'
import { startEtcdCluster } from '../helpers/etcd-cluster.js'
import { requireEtcd } from '../helpers/requires.js'
import { waitFor } from '../helpers/wait.js'

requireEtcd(t)

t.test('a lease gone while the node lives is replaced: the node can own runs again', async t => {
  const etcd = await startEtcdCluster(t)
  if (etcd === null) return
  const conn = connectEtcd({ endpoints: etcd.endpoints, prefix: `/nfs-test/${randomBytes(6).toString('hex')}/` })
  t.teardown(() => { conn.close() })
  const m = await Membership.join({ client: conn.client, ns: conn.ns, node: 'n1', ttlSeconds: 5, stateDir: mkdtempSync(join(tmpdir(), 'nfs-regain-')), version: '0.0.0-test' })
  t.teardown(async () => { await m.close({ revoke: true }) })
  const old = m.leaseId
  // What a stall longer than the TTL does (or a restart that re-attached to a lease about to expire): etcd drops the
  // lease and every key on it. Revoked from outside here, so no timing decides it.
  await conn.client.leaseClient.leaseRevoke({ ID: old })
  await waitFor('a new lease', () => m.leaseId !== old, 30_000, 50)
  t.ok(m.unfenced, 'an owner again')
  const node = await conn.ns.get('nodes/n1').exec()
  t.equal(String(node.kvs[0]?.lease), m.leaseId, 'nodes/n1 is back, on the new lease')
  // An arm's claim (own/<id> on the node's lease) works again: before, it failed with 'requested lease not found'.
  const claim = await conn.ns.if('own/r1', 'Create', '==', 0).then(conn.ns.put('own/r1').value('n1').lease(m.leaseId)).commit()
  t.ok(claim.succeeded, 'a run can be claimed on it')
})
