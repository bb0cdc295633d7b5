// The run ledger on a real 3-member etcd: the shared contract (test/store/contract/), plus what only a shared ledger
// has: a run written on one node is read on another, and two nodes racing on one run have one winner.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { connectEtcd } from '../../daemon/store/etcd/etcd-client.js'
import { openEtcdRunLedger } from '../../daemon/store/etcd/etcd-run-ledger.js'
import type { RunLedger } from '../../daemon/store/run-ledger.js'
import { startEtcdCluster } from '../helpers/etcd-cluster.js'
import { intentRecord, runLedgerContract } from './contract/run-ledger-contract.js'
import { requireEtcd } from '../helpers/requires.js'

requireEtcd(t)

t.test('etcd run ledger', async t => {
  const cluster = await startEtcdCluster(t)
  if (cluster === null) return
  const conns: Array<{ close: () => void }> = []
  t.teardown(() => { for (const c of conns) c.close() })
  const node = async (prefix: string, name: string): Promise<RunLedger> => {
    const conn = connectEtcd({ endpoints: cluster.endpoints, prefix })
    conns.push(conn)
    return await openEtcdRunLedger({ ns: conn.ns, node: name })
  }

  runLedgerContract(t, {
    open: async (t) => {
      const prefix = `/nfs-test/${randomBytes(6).toString('hex')}/`
      const ledger = await node(prefix, 'a')
      t.teardown(async () => { await ledger.close() })
      return { ledger, reopen: async () => await node(prefix, 'a') }
    }
  })

  t.test('two nodes: a run written on a is read on b; a race on one run has one winner', async t => {
    const prefix = `/nfs-test/${randomBytes(6).toString('hex')}/`
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
})
