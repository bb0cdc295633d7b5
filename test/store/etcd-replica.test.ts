// The etcd mirror (store/etcd/replica.ts) against the etcd3 client's own resume rule. The client resumes a broken
// watch from the revision after the last answer's header (lib/watch.js, Watcher.updateRevision, on 'connected' and on
// 'data'); a header can be ahead of the changes delivered (a re-created watch's first answer, a catch-up answer
// capped at 1,000 revisions). A second break in that window resumed past changes never delivered: in a clean CI run,
// after a quorum loss a node's mirror held a run's end record but never its revoke (test/store/etcd-run-ledger.test.ts,
// "b reads it"). Here the real client's Watcher receives such answers (emitted on it, so its own handler runs first,
// as for a real answer), and the mirror must neither claim a revision it has not applied nor let the client resume
// past it; then real writes go on flowing. Real 3-member etcd.
import t from 'tap'
import type { Namespace, Watcher, WatchBuilder } from 'etcd3'
import { Replica } from '../../daemon/store/etcd/replica.js'
import { startEtcdNamespace } from '../helpers/etcd-cluster.js'
import { requireEtcd } from '../helpers/requires.js'
import { waitFor } from '../helpers/wait.js'

requireEtcd(t)

/** The namespace as it is, but the watcher it creates is kept for the test. */
function capturing (ns: Namespace): { ns: Namespace, watcher: () => Watcher } {
  let created: Watcher | null = null
  const wrapped = new Proxy(ns, {
    get (target, p, receiver) {
      if (p !== 'watch') return Reflect.get(target, p, receiver) as unknown
      return () => {
        const builder: WatchBuilder = target.watch()
        const create = builder.create.bind(builder)
        builder.create = async () => { created = await create(); return created }
        return builder
      }
    }
  })
  return { ns: wrapped, watcher: () => { if (created === null) throw new Error('no watcher yet'); return created } }
}

t.test('a header ahead of the changes delivered moves neither the mirror nor the resume point', async t => {
  const etcd = await startEtcdNamespace(t)
  if (etcd === null) return
  const { prefix } = etcd
  const conn = etcd.connect()
  const { ns, watcher } = capturing(conn.ns)
  const replica = new Replica(ns, ['runs/'], 'b')
  await replica.start()
  t.teardown(async () => { await replica.close() })

  const put = await conn.ns.put('runs/r1').value('one').exec()
  const r1 = Number(put.header.revision)
  await replica.waitFor(r1)
  t.equal(replica.get('runs/r1')?.value.toString(), 'one', 'a real write reaches the mirror')
  const applied = replica.revision
  const w = watcher()

  // A re-created watch's first answer: the member's revision, its catch-up events still to come.
  w.emit('connected', { header: { revision: String(applied + 50) } })
  t.equal(w.request.start_revision, String(applied + 1), 'after a created answer the client resumes after what the mirror applied')
  t.equal(replica.revision, applied, 'and the mirror claims nothing more')

  // A catch-up answer: the current revision in its header, events up to an earlier one (here the last change the
  // mirror has, delivered again as a resumed watch does; a made-up revision would collide with the next real one).
  const kv = { key: Buffer.from(`${prefix}runs/r1`), value: Buffer.from('one'), create_revision: String(r1), mod_revision: String(r1), version: '1', lease: '0' }
  w.emit('data', { header: { revision: String(applied + 80) }, events: [{ type: 'Put', kv, prev_kv: null }] })
  t.equal(replica.revision, applied, 'the mirror reflects the last change it applied, not the header')
  t.equal(w.request.start_revision, String(applied + 1), 'and the client would resume right after it')

  // Real writes still flow, and a barrier still answers.
  const again = await conn.ns.put('runs/r3').value('three').exec()
  await replica.waitFor(Number(again.header.revision))
  t.equal(replica.get('runs/r3')?.value.toString(), 'three', 'a later real write arrives')
  const reached = await replica.barrier()
  t.ok(reached >= Number(again.header.revision), 'a barrier answers')
})

t.test('a watch that must resume from a compacted revision reads everything again and goes on', async t => {
  // etcd cancels such a watch with compact_revision set and no cancel_reason (v3rpc/watch.go sendLoop), so the
  // client's error says only "Watcher canceled: ". Before, the mirror resynced only on an error naming a compaction:
  // this one left it with no watch at all, deaf to every later change, its barriers hanging.
  const etcd = await startEtcdNamespace(t)
  if (etcd === null) return
  const { cluster } = etcd
  // The mirror reaches etcd through member 0 only, so killing it breaks the watch while the others go on.
  const mine = etcd.connect({ endpoints: [cluster.endpoints[0]!] })
  const other = etcd.connect({ endpoints: cluster.endpoints.slice(1) })
  const replica = new Replica(mine.ns, ['runs/'], 'b')
  await replica.start()
  t.teardown(async () => { await replica.close() })
  const seen: string[] = []
  replica.onChange(c => { seen.push(`${c.op} ${c.key}`) })

  const first = await other.ns.put('runs/r1').value('one').exec()
  await replica.waitFor(Number(first.header.revision))
  await cluster.kill(0)
  await other.ns.put('runs/r2').value('two').exec()
  await other.ns.delete().key('runs/r1').exec()
  const last = await other.ns.put('runs/r3').value('three').exec()
  await other.client.kv.compact({ revision: last.header.revision, physical: true })
  await cluster.restart(0)
  await cluster.healthy()

  const after = await other.ns.put('runs/r4').value('four').exec()
  // Bounded, so that a deaf mirror fails here instead of hanging the file.
  await waitFor('the mirror to reach the last write', () => replica.revision >= Number(after.header.revision), 20_000).catch(() => {})
  t.ok(replica.revision >= Number(after.header.revision), 'the mirror follows again')
  t.same([...replica.list('runs/')].map(([k, e]) => `${k}=${e.value.toString()}`), ['runs/r2=two', 'runs/r3=three', 'runs/r4=four'], 'the mirror holds what etcd holds')
  // Changes found by a fresh read come in key order, deletes last: their order among themselves is not etcd's.
  t.same(seen.slice().sort(), ['delete runs/r1', 'put runs/r1', 'put runs/r2', 'put runs/r3', 'put runs/r4'], 'and its listeners saw each change once')
  const deaf = new Promise<number>(resolve => { setTimeout(() => { resolve(-1) }, 10_000).unref() })
  t.ok(await Promise.race([replica.barrier(), deaf]) >= Number(after.header.revision), 'a barrier answers')
})
