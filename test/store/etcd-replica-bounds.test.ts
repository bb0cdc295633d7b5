// The etcd mirror's waits are bounded (store/etcd/replica.ts WAIT_MS, CANCEL_WAIT_MS). A revision reaches the mirror
// only through its watch, and the etcd3 client resumes a watch only on an error it sees: a member cut off from its peers
// keeps the watch open and delivers nothing, so a barrier, or a write waiting for its own revision, waited for good and
// an API request or a monitor pass hung with it. The watch's cancel waits for etcd's answer with no bound either, so a
// daemon's shutdown could hang on it. Real 3-member etcd.
import t from 'tap'
import type { Namespace } from 'etcd3'
import { connectEtcd } from '../../daemon/store/etcd/etcd-client.js'
import { Replica } from '../../daemon/store/etcd/replica.js'
import { codeOf } from '../helpers/code-of.js'
import { freshPrefix, startEtcdCluster, startEtcdNamespace } from '../helpers/etcd-cluster.js'
import { requireEtcd } from '../helpers/requires.js'
import { startTcpRelay } from '../helpers/tcp-relay.js'
import { waitFor } from '../helpers/wait.js'

requireEtcd(t)

/** `p`, or a rejection naming `what` after `ms`: an unbounded wait fails the test instead of hanging the file. */
async function within<T> (what: string, p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error(`${what}: still waiting after ${ms} ms`)) }, ms) })
  try {
    return await Promise.race([p, late])
  } finally {
    clearTimeout(timer)
  }
}

/** A namespace whose watches go through `watches` and every other call through `calls`. */
function split (watches: Namespace, calls: Namespace): Namespace {
  return new Proxy(calls, {
    get (target, p, receiver) {
      if (p === 'watch') return () => watches.watch()
      return Reflect.get(target, p, receiver) as unknown
    }
  })
}

t.test('a waitFor on a revision that never comes answers NFS_ERR_CLUSTER_UNAVAILABLE within its bound', async t => {
  const etcd = await startEtcdNamespace(t)
  if (etcd === null) return
  const conn = etcd.connect()
  const replica = new Replica(conn.ns, ['runs/'], 'b', { waitMs: 500 })
  await replica.start()
  t.teardown(async () => { await replica.close() })

  const started = Date.now()
  const code = await within('waitFor', codeOf(replica.waitFor(replica.revision + 1000)), 5000)
  const took = Date.now() - started
  t.equal(code, 'NFS_ERR_CLUSTER_UNAVAILABLE', 'the coded error of an unreachable cluster')
  t.ok(took >= 450 && took < 3000, `after its bound (${took} ms)`)
  t.equal(replica.waiting, 0, 'and the waiter is gone')

  const put = await conn.ns.put('runs/r1').value('one').exec()
  await within('a real write', replica.waitFor(Number(put.header.revision)), 5000)
  t.equal(replica.get('runs/r1')?.value.toString(), 'one', 'a revision that comes still resolves')
  t.equal(replica.waiting, 0, 'and leaves no waiter either')
})

t.test('a watch stalled on a member cut off from its peers: barrier and waitFor answer unavailable, then catch up', async t => {
  const cluster = await startEtcdCluster(t, 3, { peerRelays: true })
  if (cluster === null) return
  const prefix = freshPrefix()
  // The mirror watches through one member that does not lead; its reads and writes (the barrier's put) go to the
  // other two, which keep a quorum when that member is cut off.
  const leader = await cluster.leader()
  const lone = [0, 1, 2].find(i => i !== leader)!
  const watchConn = connectEtcd({ endpoints: [cluster.endpoints[lone]!], prefix })
  const callConn = connectEtcd({ endpoints: cluster.endpoints.filter((_e, i) => i !== lone), prefix })
  t.teardown(() => { watchConn.close(); callConn.close() })
  const replica = new Replica(split(watchConn.ns, callConn.ns), ['runs/'], 'b', { waitMs: 1500 })
  await replica.start()
  t.teardown(async () => { await replica.close() })

  const first = await callConn.ns.put('runs/r1').value('one').exec()
  await within('the first write', replica.waitFor(Number(first.header.revision)), 5000)
  await cluster.isolate(lone)
  t.teardown(() => { cluster.rejoin(lone) })

  // Committed by the majority; the lone member never learns of it, and its watch stays open, silent.
  const second = await callConn.ns.put('runs/r2').value('two').exec()
  const r2 = Number(second.header.revision)
  t.equal(await within('waitFor on the stalled watch', codeOf(replica.waitFor(r2)), 10_000), 'NFS_ERR_CLUSTER_UNAVAILABLE', 'a write\'s wait for its revision answers unavailable')
  const started = Date.now()
  t.equal(await within('a barrier on the stalled watch', codeOf(replica.barrier()), 10_000), 'NFS_ERR_CLUSTER_UNAVAILABLE', 'so does a barrier, whose own put etcd took')
  t.ok(Date.now() - started < 5000, 'within its bound and the put\'s deadline')
  t.equal(replica.waiting, 0, 'no waiter is left behind')
  t.equal(replica.get('runs/r2'), undefined, 'the mirror did not see the write (the watch really stalled)')

  cluster.rejoin(lone)
  await waitFor('the mirror to catch up after the member rejoins', () => replica.revision >= r2, 30_000, 50)
  t.equal(replica.get('runs/r2')?.value.toString(), 'two', 'the mirror catches up')
  t.ok(await within('a barrier after the heal', replica.barrier(), 10_000) > r2, 'and a barrier answers again')
})

t.test('close() does not wait for good for the answer to the watch\'s cancel', async t => {
  const etcd = await startEtcdNamespace(t)
  if (etcd === null) return
  // The mirror reaches member 0 through a relay that the test cuts: the cancel goes out, its answer never comes back,
  // and the client (lib/watch.js WatchManager.detach) waits for it until its keepalive sees the connection dead.
  const url = new URL(etcd.cluster.endpoints[0]!)
  const relay = await startTcpRelay(t, { host: url.hostname, port: Number(url.port) })
  const conn = etcd.connect({ endpoints: [`http://127.0.0.1:${relay.port}`] })
  const replica = new Replica(conn.ns, ['runs/'], 'b', { cancelWaitMs: 200 })
  await replica.start()
  const put = await conn.ns.put('runs/r1').value('one').exec()
  await within('the write', replica.waitFor(Number(put.header.revision)), 5000)

  relay.cut()
  const started = Date.now()
  await within('close', replica.close(), 30_000)
  const took = Date.now() - started
  t.ok(took < 900, `close() returns after its bound (${took} ms)`)
})
