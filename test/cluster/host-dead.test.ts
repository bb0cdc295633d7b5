// The hostDeadAfterSeconds rule over a real 3-member etcd: node a (host ha) dies without a word; node b (host hb)
// sees a's nodes/ key go when the lease expires, adopts a's runs, and counts ha dead from that moment on its own
// (injected) clock: its local heads are ended only once hostDeadAfterSeconds have passed, a Slurm head never by
// this rule, and a node coming back on ha makes the host alive again at once.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Membership } from '../../daemon/cluster/membership.js'
import { EtcdOwnership } from '../../daemon/cluster/ownership.js'
import { hostDeadEnd } from '../../daemon/runs/host-dead.js'
import { connectEtcd } from '../../daemon/store/etcd/etcd-client.js'
import { openEtcdRunLedger, type EtcdRunLedger } from '../../daemon/store/etcd/etcd-run-ledger.js'
import { startEtcdCluster } from '../helpers/etcd-cluster.js'
import { intentRecord } from '../store/contract/run-ledger-contract.js'
import { requireEtcd } from '../helpers/requires.js'

requireEtcd(t)

const DEAD_AFTER = 10_000

t.test('a dead host\'s local heads are ended after hostDeadAfterSeconds, not before', async t => {
  const cluster = await startEtcdCluster(t)
  if (cluster === null) return
  const prefix = `/nfs-test/${randomBytes(6).toString('hex')}/`
  const closers: Array<() => Promise<void> | void> = []
  t.teardown(async () => { for (const c of closers.reverse()) await c() })
  let clock = 1_000_000
  const now = (): number => clock

  async function node (name: string, host: string, ttlSeconds: number): Promise<{ membership: Membership, ownership: EtcdOwnership, ledger: EtcdRunLedger }> {
    const conn = connectEtcd({ endpoints: cluster!.endpoints, prefix })
    closers.push(() => { conn.close() })
    const membership = await Membership.join({ client: conn.client, ns: conn.ns, node: name, host, ttlSeconds, stateDir: mkdtempSync(join(tmpdir(), `nfs-hd-${name}-`)), version: 'test' })
    closers.push(async () => { await membership.close({ revoke: true }) })
    let ledger: EtcdRunLedger | null = null
    const ownership = await EtcdOwnership.open({ ns: conn.ns, membership, runs: () => ledger!.entries(), jitterMs: () => 0, hostDeadAfterMs: DEAD_AFTER, now })
    closers.push(async () => { await ownership.close() })
    ledger = await openEtcdRunLedger({ ns: conn.ns, node: name, owner: { claimOp: id => ownership.claimOp(id), key: id => `own/${id}`, node: name } })
    closers.push(async () => { await ledger!.close() })
    return { membership, ownership, ledger }
  }

  const a = await node('a', 'ha', 3)
  const b = await node('b', 'hb', 30)
  const local = await a.ledger.insert({ ...intentRecord(1), host: 'ha', state: 'running' })
  const slurm = await a.ledger.insert({ ...intentRecord(2), host: 'ha', state: 'running', slurmJobId: '4242' })
  await b.ledger.settle()
  await b.ownership.settle()
  t.equal(b.ownership.hostDeadForMs('ha'), null, 'ha has a live node')
  t.equal(hostDeadEnd(b.ledger.get(local.runId)!, 'hb', h => b.ownership.hostAlive(h)), null, 'nothing ends while ha lives')

  // a dies: its lease (TTL 3 s) expires and etcd deletes nodes/a and a's own/ keys.
  await a.membership.close()
  const diedAt = clock
  const started = Date.now()
  while (b.ownership.hostDeadForMs('ha') === null && Date.now() - started < 15_000) await new Promise(resolve => setTimeout(resolve, 50))
  t.equal(b.ownership.hostDeadForMs('ha'), 0, 'b saw ha\'s last node go')
  t.comment(`ha seen dead ${Date.now() - started} ms after its daemon stopped (lease TTL 3 s)`)
  await b.ledger.settle()
  t.same((await b.ownership.adoptOrphans()).sort(), [local.runId, slurm.runId].sort(), 'b adopts both runs')
  t.ok(b.ownership.owns(b.ledger.get(local.runId)!))

  clock = diedAt + DEAD_AFTER - 1
  t.ok(b.ownership.hostAlive('ha'), 'one ms short of hostDeadAfterSeconds: still alive')
  t.equal(hostDeadEnd(b.ledger.get(local.runId)!, 'hb', h => b.ownership.hostAlive(h)), null, 'adopted, not ended')
  clock = diedAt + DEAD_AFTER
  t.notOk(b.ownership.hostAlive('ha'), 'dead for hostDeadAfterSeconds')
  t.equal(hostDeadEnd(b.ledger.get(local.runId)!, 'hb', h => b.ownership.hostAlive(h))?.state, 'killed', 'the local head is ended as killed')
  t.equal(hostDeadEnd(b.ledger.get(slurm.runId)!, 'hb', h => b.ownership.hostAlive(h)), null, 'the Slurm head is left to Slurm')
  t.ok(b.ownership.hostAlive('hb'), 'b\'s own host lives')

  // A node comes back on ha: the host is alive again at once, however long it was gone.
  clock += 60_000
  const a2 = await node('a2', 'ha', 30)
  await b.ownership.settle()
  t.equal(b.ownership.hostDeadForMs('ha'), null, 'ha is back')
  t.ok(b.ownership.hostAlive('ha'))
  t.ok(a2.ownership.hostAlive('zz'), 'a host never seen counts from when watching began: not dead at once')
  clock += DEAD_AFTER
  t.notOk(a2.ownership.hostAlive('zz'), 'and dead once hostDeadAfterSeconds have passed since')
})
