// Deletion tombstones (sdel/) of the etcd store on a real 3-member etcd: written with each delete so that every node's
// secret.deleted event can say who deleted, they must not outlive their use. 500 unique names created and deleted on
// node a: node b's events all say who, and then no node holds them in memory and etcd holds none once their lease
// (3 s here, 300 s by default) runs out. Before, every name ever deleted kept its sdel/ key and a map entry on
// every node, for good.
import t from 'tap'
import { Etcd3 } from 'etcd3'
import { openEtcdSecretsStore } from '../../daemon/store/etcd/etcd-secrets-store.js'
import { generateKey } from '../../daemon/store/crypto.js'
import { SecretValue } from '../../daemon/secret-value.js'
import type { StoreChange } from '../../daemon/store/secrets-store.js'
import { startEtcdNamespace } from '../helpers/etcd-cluster.js'
import { silentLogger } from './helpers.js'
import { requireEtcd } from '../helpers/requires.js'
import { waitFor } from '../helpers/wait.js'

requireEtcd(t)

const NAMES = 500
const TTL_S = 3

t.test('tombstones are bounded in etcd and in memory', async t => {
  const etcd = await startEtcdNamespace(t)
  if (etcd === null) return
  const key = generateKey()
  const conn = etcd.connect()
  const connB = etcd.connect()
  const a = await openEtcdSecretsStore({ ns: conn.ns, node: 'a', key, logger: silentLogger(), tombstoneTtlSeconds: TTL_S })
  const b = await openEtcdSecretsStore({ ns: connB.ns, node: 'b', key, logger: silentLogger(), tombstoneTtlSeconds: TTL_S })
  t.teardown(async () => { await a.close(); await b.close() })
  const deletedOnB: StoreChange[] = []
  b.onChange(c => { if (c.kind === 'secret' && c.op === 'delete') deletedOnB.push(c) })

  const names = Array.from({ length: NAMES }, (_, i) => `GONE_${i}`)
  for (let i = 0; i < names.length; i += 10) {
    await Promise.all(names.slice(i, i + 10).map(async n => {
      await a.createSecret('user:alice', n, new SecretValue(`v-${n}`), 'alice')
      await a.deleteSecret('user:alice', n, 'alice')
    }))
  }
  await b.settle()
  t.equal(deletedOnB.length, NAMES, 'b saw every delete')
  t.equal(deletedOnB.filter(c => c.kind === 'secret' && c.op === 'delete' && c.by === 'alice').length, NAMES, 'each one with who deleted it')
  t.comment(`after ${NAMES} deletes: tombstones in memory a ${a.tombstones}, b ${b.tombstones}`)
  t.equal(a.tombstones, 0, 'a keeps none in memory (each is forgotten once its delete is told)')
  t.equal(b.tombstones, 0, 'nor does b')

  const inEtcd = async (): Promise<number> => await conn.ns.getAll().prefix('sdel/').count()
  t.comment(`sdel/ keys in etcd right after: ${await inEtcd()}`)
  await waitFor('the tombstones\' lease to run out', async () => await inEtcd() === 0, (TTL_S + 10) * 1000, 200).catch(() => {})
  t.equal(await inEtcd(), 0, 'etcd holds no sdel/ key once the lease ran out')

  // A name deleted again later still says who, on a lease of its own.
  await a.createSecret('user:alice', 'GONE_1', new SecretValue('again'), 'alice')
  await a.deleteSecret('user:alice', 'GONE_1', 'bob')
  await b.settle()
  const last = deletedOnB.at(-1)
  t.equal(last?.kind === 'secret' ? last.by : null, 'bob', 'a later delete of the same name says who')
})

// Daemons older than the tombstone lease wrote sdel/ keys with none: they stayed for good. A start takes them up: a
// tombstone whose secret exists again is stale and goes at once; any other is put on the node's tombstone lease and
// goes with it. A tombstone a delete rewrote meanwhile (on a lease) is not touched.
t.test('lease-less tombstones of older daemons are put on a lease, or deleted when stale', async t => {
  const etcd = await startEtcdNamespace(t)
  if (etcd === null) return
  const key = generateKey()
  const conn = etcd.connect()
  // What an older daemon left: a tombstone per deleted name, no lease; one name made again since.
  const old = Array.from({ length: 20 }, (_, i) => `OLD_${i}`)
  for (const n of old) await conn.ns.put(`sdel/user:alice/${n}`).value(JSON.stringify({ by: 'alice', version: 1 })).exec()
  const first = await openEtcdSecretsStore({ ns: conn.ns, node: 'a', key, logger: silentLogger(), tombstoneTtlSeconds: TTL_S })
  await first.legacyTidied
  await first.createSecret('user:alice', 'OLD_0', new SecretValue('made again'), 'alice')
  await first.close()
  // Back to what the older daemon left (the first start put them on a lease; a lease-less put again).
  for (const n of old) await conn.ns.put(`sdel/user:alice/${n}`).value(JSON.stringify({ by: 'alice', version: 1 })).exec()
  const leases = async (): Promise<string[]> => (await conn.ns.getAll().prefix('sdel/').exec()).kvs.map(kv => String(kv.lease))
  t.equal((await leases()).filter(l => l === '0').length, old.length, `${old.length} lease-less sdel/ keys before the start`)

  const a = await openEtcdSecretsStore({ ns: conn.ns, node: 'a', key, logger: silentLogger(), tombstoneTtlSeconds: TTL_S })
  t.teardown(async () => { await a.close() })
  t.equal(await a.legacyTidied, old.length, 'the start took up every one')
  const now = await leases()
  t.equal(now.filter(l => l === '0').length, 0, 'none is left without a lease')
  t.equal(now.length, old.length - 1, 'the stale one (its secret made again) is deleted')
  t.ok(a.getSecret('user:alice', 'OLD_0') !== undefined, 'the secret made again is untouched')
  await waitFor('the tombstones\' lease to run out', async () => (await leases()).length === 0, (TTL_S + 10) * 1000, 200).catch(() => {})
  t.equal((await leases()).length, 0, 'etcd holds no sdel/ key once the lease ran out')
})

// An older cluster holds one lease-less tombstone per name ever deleted: past the client's receive limit (4 MiB by
// default) a read of all of sdel/ in one answer failed for good, so the mirror could not load (the store did not
// open) and the tidy could not run either. Here the limit is 32 KiB and the tombstones about 130 KiB: the mirror
// reads in pages and the tidy walks the mirror.
t.test('many lease-less tombstones past the client\'s receive limit are all taken up', async t => {
  const etcd = await startEtcdNamespace(t)
  if (etcd === null) return
  const key = generateKey()
  const conn = etcd.connect()
  const writer = await openEtcdSecretsStore({ ns: conn.ns, node: 'w', key, logger: silentLogger(), tombstoneTtlSeconds: TTL_S })
  await writer.createSecret('user:alice', 'OLD_7', new SecretValue('made again'), 'alice')
  await writer.close()
  const MANY = 1500
  for (let i = 0; i < MANY; i += 100) {
    const puts = Array.from({ length: Math.min(100, MANY - i) }, (_, j) =>
      conn.ns.put(`sdel/user:alice/OLD_${i + j}`).value(JSON.stringify({ by: 'alice', version: 1 })))
    await conn.ns.if('meta/store', 'Create', '!=', 0).then(...puts).commit()
  }
  const small = new Etcd3({ hosts: etcd.cluster.endpoints, grpcOptions: { 'grpc.max_receive_message_length': 32 * 1024 } })
  t.teardown(() => { small.close() })
  await t.rejects(small.namespace(etcd.prefix).getAll().prefix('sdel/').exec(), 'sdel/ in one answer is past the limit')

  // A lease long enough to outlast the tidy, so that the count below is not a race with its expiry.
  const a = await openEtcdSecretsStore({ ns: small.namespace(etcd.prefix), node: 'a', key, logger: silentLogger(), tombstoneTtlSeconds: 120 })
  t.teardown(async () => { await a.close() })
  t.equal(await a.legacyTidied, MANY, 'the start took up every one')
  const left = (await conn.ns.getAll().prefix('sdel/').exec()).kvs
  t.equal(left.filter(kv => String(kv.lease) === '0').length, 0, 'none is left without a lease')
  t.equal(left.length, MANY - 1, 'the stale one (its secret made again) is deleted')
})
