// Deletion tombstones (sdel/) of the etcd store on a real 3-member etcd: written with each delete so that every node's
// secret.deleted event can say who deleted, they must not outlive their use. 500 unique names created and deleted on
// node a: node b's events all say who, and then no node holds them in memory and etcd holds none once their lease
// (3 s here, 300 s by default) runs out. Before, every name ever deleted kept its sdel/ key and a map entry on
// every node, for good.
import t from 'tap'
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
