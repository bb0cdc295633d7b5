// Membership when etcd misbehaves, on a real 3-member etcd: the self-fencing rule through a quorum loss (CLUSTER.md
// "Ownership", "Engine outage"), and a lease that is gone while the daemon lives. The node's clock is the test's
// (frozen, moved by hand), so which window is open is decided by the rule, not by how fast a loaded machine runs;
// the test waits only for etcd's answers, which it counts by following the client's real Status calls.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Membership } from '../../daemon/cluster/membership.js'
import { connectEtcd, type EtcdConnection } from '../../daemon/store/etcd/etcd-client.js'
import { startEtcdCluster } from '../helpers/etcd-cluster.js'
import { requireEtcd } from '../helpers/requires.js'
import { waitFor } from '../helpers/wait.js'

requireEtcd(t)

const TTL = 6
/** the fencing window: TTL - 2 s */
const WINDOW = (TTL - 2) * 1000

/** Every Status answer (or failure) the membership got, with the node's clock when it asked. */
function followStatus (conn: EtcdConnection, clock: () => number): Array<{ at: number, leader: string | null }> {
  const seen: Array<{ at: number, leader: string | null }> = []
  const m = conn.client.maintenance
  const status = m.status.bind(m)
  m.status = async (...args: Parameters<typeof status>) => {
    const at = clock()
    try {
      const res = await status(...args)
      seen.push({ at, leader: String(res.leader) })
      return res
    } catch (err) {
      seen.push({ at, leader: null })
      throw err
    }
  }
  return seen
}

t.test('quorum lost: the owner stays an owner while etcd says it has no leader, and only then', async t => {
  const etcd = await startEtcdCluster(t)
  if (etcd === null) return
  const conn = connectEtcd({ endpoints: etcd.endpoints, prefix: `/nfs-test/${randomBytes(6).toString('hex')}/` })
  t.teardown(() => { conn.close() })
  let clock = Date.now()
  const now = (): number => clock
  const seen = followStatus(conn, now)
  const m = await Membership.join({ client: conn.client, ns: conn.ns, node: 'n1', ttlSeconds: TTL, stateDir: mkdtempSync(join(tmpdir(), 'nfs-fence-')), version: '0.0.0-test', now })
  t.teardown(async () => { await m.close() })
  const t0 = clock
  /** wait until etcd answered a Status asked at the clock as it is now (or later) */
  const answered = async (leader: string | null): Promise<void> => {
    const from = clock
    await waitFor(`a Status answer ${String(leader)} asked at ${from - t0} ms`, () => seen.some(s => s.at >= from && s.leader === leader), 30_000, 50)
  }

  // A node already past its keepalive window when it hears "no leader" stays fenced: its lease may have expired
  // before the quorum was lost, and another node may be adopting its runs.
  // (A leader without quorum still answers keepalives until it steps down: the clock moves once a member has said
  // there is no leader, so that no keepalive answered after the move reopens the window.)
  await etcd.kill(1)
  await etcd.kill(2)
  await answered('0')
  clock = t0 + 2 * WINDOW
  await answered('0')
  t.ok(m.quorumLost, 'a member says there is no leader')
  t.notOk(m.unfenced, 'a no-leader answer after the window closed changes nothing')
  await etcd.restart(1)
  await etcd.restart(2)
  await etcd.healthy()
  await waitFor('an answered keepalive', () => m.unfenced, 60_000, 100)
  t.notOk(m.quorumLost, 'quorum back: the keepalive is answered again (the lease was frozen, not expired)')

  // Quorum lost while the node is an owner: etcd says there is no leader, again late in the keepalive window, and the
  // lease cannot expire (frozen), so the window runs on from that answer.
  const t1 = clock
  await etcd.kill(1)
  await etcd.kill(2)
  await answered('0')
  clock = t1 + WINDOW - 500
  await answered('0')
  clock = t1 + WINDOW + 1500
  t.ok(m.unfenced, 'past the keepalive window: still an owner, on etcd\'s word that it has no leader')

  // Now no member answers at all (as for a node cut off from every member): nothing is learned either way, and a
  // failed question does not fence the owner before its window ends.
  await etcd.kill(0)
  await answered(null)
  t.ok(m.unfenced, 'a failed Status changes nothing within the window of the last no-leader answer')
  clock = t1 + 2 * WINDOW
  t.notOk(m.unfenced, 'past the window of the last answer: fenced')
})

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
