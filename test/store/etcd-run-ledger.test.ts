// The run ledger on a real 3-member etcd: the shared contract (test/store/contract/), plus what only a shared ledger
// has: a run written on one node is read on another, two nodes racing on one run have one winner, every node's event
// bus shows the run's events once, and the revoke path's records wait out a quorum loss (DeferredRecords).
import t from 'tap'
import { openEtcdRunLedger } from '../../daemon/store/etcd/etcd-run-ledger.js'
import type { RunLedger } from '../../daemon/store/run-ledger.js'
import { EventBus, type NfsEvent } from '../../daemon/events.js'
import { DeferredRecords } from '../../daemon/runs/deferred-records.js'
import type { RunRecord } from '../../daemon/types.js'
import { freshPrefix, startEtcdNamespace } from '../helpers/etcd-cluster.js'
import { intentRecord, runLedgerContract } from './contract/run-ledger-contract.js'
import { requireEtcd } from '../helpers/requires.js'

requireEtcd(t)

t.test('etcd run ledger', async t => {
  const etcd = await startEtcdNamespace(t)
  if (etcd === null) return
  const { cluster } = etcd
  const node = async (prefix: string, name: string): Promise<RunLedger> =>
    await openEtcdRunLedger({ ns: etcd.connect({ prefix }).ns, node: name })

  runLedgerContract(t, {
    open: async (t) => {
      const prefix = freshPrefix()
      const ledger = await node(prefix, 'a')
      t.teardown(async () => { await ledger.close() })
      return { ledger, reopen: async () => await node(prefix, 'a') }
    }
  })

  t.test('two nodes: a run written on a is read on b; a race on one run has one winner', async t => {
    const prefix = freshPrefix()
    const a = await node(prefix, 'a')
    const b = await node(prefix, 'b')
    t.teardown(async () => { await a.close(); await b.close() })
    const run = await a.insert(intentRecord(1))
    await b.settle()
    t.equal(b.get(run.runId)?.state, 'armed')
    const tries = await Promise.allSettled([
      a.update(run.runId, 1, r => ({ ...r, state: 'completed' })),
      b.update(run.runId, 1, r => ({ ...r, state: 'killed' }))
    ])
    t.same(tries.map(r => r.status).sort(), ['fulfilled', 'rejected'])
    await a.settle()
    await b.settle()
    t.equal(a.get(run.runId)?.state, b.get(run.runId)?.state, 'both nodes agree')
    t.equal(a.get(run.runId)?.version, 2)
  })

  const following = (ledger: RunLedger): NfsEvent[] => {
    const bus = new EventBus()
    const got: NfsEvent[] = []
    bus.subscribe(e => got.push(e))
    bus.follow({ ledger })
    return got
  }
  const placing = (i: number): Omit<RunRecord, 'version'> => {
    const r = intentRecord(i)
    return { ...r, targets: { hpc: { ...r.targets.hpc!, state: 'provisioning' } } }
  }
  const placed = (r: RunRecord): RunRecord => ({ ...r, targets: { hpc: { ...r.targets.hpc!, state: 'provisioned' } } })
  const ended = (r: RunRecord): RunRecord => ({ ...r, state: 'killed', endReason: 'revoked by alice', targets: { hpc: { ...r.targets.hpc!, state: 'revoking' } } })
  const revoked = (r: RunRecord): RunRecord => ({ ...r, targets: { hpc: { ...r.targets.hpc!, state: 'revoked' } } })

  t.test('events on every node: a run written on a shows on b\'s bus, once, in order', async t => {
    const prefix = freshPrefix()
    const a = await node(prefix, 'a')
    const b = await node(prefix, 'b')
    t.teardown(async () => { await a.close(); await b.close() })
    const onA = following(a)
    const onB = following(b)
    const run = await a.insert(placing(1))
    await a.update(run.runId, 1, placed)
    // the end written by b (an explicit revoke there), the revoke recorded by a (the owner)
    await b.settle()
    await b.update(run.runId, 2, ended)
    await a.settle()
    await a.update(run.runId, 3, revoked)
    await b.settle()
    const types = ['run.provisioned', 'run.armed', 'run.killed', 'run.revoked']
    t.same(onA.map(e => e.type), types, 'a shows its own writes and b\'s')
    t.same(onB.map(e => e.type), types, 'b shows its own writes and a\'s')
    t.same(onB.find(e => e.type === 'run.killed'), { ...onB.find(e => e.type === 'run.killed'), user: 'alice', runId: run.runId, state: 'killed', reason: 'revoked by alice' })
  })

  // Last: it takes the cluster's quorum away.
  t.test('a quorum loss: the revoke path\'s records are kept, then written; the other node sees each event once', async t => {
    const prefix = freshPrefix()
    const a = await DeferredRecords.open(await node(prefix, 'a'))
    const b = await node(prefix, 'b')
    t.teardown(async () => { await a.close(); await b.close() })
    const onA = following(a)
    const onB = following(b)
    const run = await a.insert(placing(2))
    await a.update(run.runId, 1, placed)
    await cluster.kill(1)
    await cluster.kill(2)
    const end = await a.recordBestEffort(run.runId, 2, ended)
    const done = await a.recordBestEffort(run.runId, 3, revoked)
    t.same([end.durable, done.durable, a.get(run.runId)?.targets.hpc?.state], [false, false, 'revoked'], 'kept in memory, read back')
    t.same(onA.map(e => e.type), ['run.provisioned', 'run.armed', 'run.killed', 'run.revoked'], 'a shows them at once')
    await t.rejects(a.flush(), { code: 'NFS_ERR_CLUSTER_UNAVAILABLE' }, 'not written while there is no quorum')
    await cluster.restart(1)
    await cluster.restart(2)
    await cluster.healthy()
    // The client backs off from the members it lost for a while: flush as the monitor's passes would.
    for (let i = 0; i < 100 && a.unsynced().length > 0; i++) {
      await a.flush().catch(async () => { await new Promise(resolve => setTimeout(resolve, 200)) })
    }
    t.same(a.unsynced(), [], 'written once quorum is back')
    await b.settle()
    t.same([b.get(run.runId)?.state, b.get(run.runId)?.targets.hpc?.state], ['killed', 'revoked'], 'b reads it')
    t.same(onB.map(e => e.type), ['run.provisioned', 'run.armed', 'run.killed', 'run.revoked'], 'b shows it once quorum is back')
    t.equal(onA.length, 4, 'and a does not show it twice')
  })
})
