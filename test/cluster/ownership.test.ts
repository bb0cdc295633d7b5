// Run ownership on a real 3-member etcd: a run armed on node a is owned by a (the claim rides in the intent's
// transaction); when a's lease expires its own/ keys go and the survivors each adopt, every run exactly once; an
// adopter that read a run before another node ended it cannot adopt it again (the mod revision compare, without which
// CLUSTER.md measured 6-22 double revokes in 200); a fenced node adopts nothing; an owner's write is refused once it
// no longer owns the run.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Membership } from '../../daemon/cluster/membership.js'
import { EtcdOwnership } from '../../daemon/cluster/ownership.js'
import { connectEtcd } from '../../daemon/store/etcd/etcd-client.js'
import { openEtcdRunLedger, type EtcdRunLedger } from '../../daemon/store/etcd/etcd-run-ledger.js'
import { startEtcdCluster } from '../helpers/etcd-cluster.js'
import { intentRecord } from '../store/contract/run-ledger-contract.js'
import { requireEtcd } from '../helpers/requires.js'

requireEtcd(t)

interface Node { membership: Membership, ownership: EtcdOwnership, ledger: EtcdRunLedger }

t.test('ownership and takeover', async t => {
  const cluster = await startEtcdCluster(t)
  if (cluster === null) return
  const prefix = `/nfs-test/${randomBytes(6).toString('hex')}/`
  const closers: Array<() => Promise<void> | void> = []
  t.teardown(async () => { for (const c of closers.reverse()) await c() })

  async function node (name: string, ttlSeconds = 3): Promise<Node> {
    const conn = connectEtcd({ endpoints: cluster!.endpoints, prefix })
    closers.push(() => { conn.close() })
    const membership = await Membership.join({ client: conn.client, ns: conn.ns, node: name, ttlSeconds, stateDir: mkdtempSync(join(tmpdir(), `nfs-own-${name}-`)), version: 'test' })
    closers.push(async () => { await membership.close({ revoke: true }) })
    let ledger: EtcdRunLedger | null = null
    const ownership = await EtcdOwnership.open({ ns: conn.ns, membership, runs: () => ledger!.entries(), jitterMs: () => Math.random() * 50 })
    closers.push(async () => { await ownership.close() })
    ledger = await openEtcdRunLedger({ ns: conn.ns, node: name, owner: { claimOp: id => ownership.claimOp(id), key: id => `own/${id}`, node: name } })
    closers.push(async () => { await ledger!.close() })
    return { membership, ownership, ledger }
  }

  const a = await node('a')
  const b = await node('b', 30)
  const c = await node('c', 30)
  const runs = await Promise.all([1, 2, 3, 4, 5, 6].map(async i => await a.ledger.insert(intentRecord(i))))
  await Promise.all([a.ownership.settle(), b.ownership.settle(), b.ledger.settle()])
  for (const r of runs) {
    t.ok(a.ownership.owns(r), `a owns ${r.runId}`)
    t.notOk(b.ownership.owns(b.ledger.get(r.runId)!), 'b does not')
  }
  t.same(await b.ownership.adoptOrphans(), [], 'nothing to adopt while a lives')

  // b ends run 1 as a non-owner would not be allowed to: an owner write from b is refused.
  await t.rejects(b.ledger.update(runs[0]!.runId, 1, r => ({ ...r, state: 'killed' }), { asOwner: true }), { code: 'NFS_ERR_CONFLICT' })

  // a dies without a word: its lease expires (TTL 3 s) and etcd deletes its own/ keys.
  const orphaned = new Set<string>()
  b.ownership.onOrphaned(id => orphaned.add(id))
  await a.membership.close()
  for (let i = 0; i < 100 && orphaned.size < runs.length; i++) await new Promise(resolve => setTimeout(resolve, 100))
  t.equal(orphaned.size, runs.length, 'b is told of every orphan')
  await b.ledger.settle()
  await c.ledger.settle()
  const [byB, byC] = await Promise.all([b.ownership.adoptOrphans(), c.ownership.adoptOrphans()])
  t.equal(byB.length + byC.length, runs.length, 'every run adopted')
  t.equal(new Set([...byB, ...byC]).size, runs.length, 'exactly once')
  for (const id of byB) t.equal(c.ownership.ownerOf(id) ?? b.ownership.ownerOf(id), 'b')

  // An owner's write succeeds; then the run no longer needs an owner and its key is released.
  const first = byB[0] ?? byC[0]!
  const owner = byB.includes(first) ? b : c
  const other = owner === b ? c : b
  await other.ledger.settle()
  const staleMod = other.ledger.entries().find(e => e.run.runId === first)!.mod
  await owner.ledger.update(first, 1, r => ({ ...r, state: 'killed', targets: { hpc: { ...r.targets.hpc!, state: 'revoked' } } }), { asOwner: true })
  await owner.ownership.release(first)
  await other.ledger.settle()
  t.equal(other.ownership.ownerOf(first), null, 'released')
  t.notOk(await other.ownership.adopt(first, staleMod), 'a stale read cannot adopt a run another node already ended')
  t.same(await other.ownership.adoptOrphans(), [], 'and a revoked run needs no owner')
})
