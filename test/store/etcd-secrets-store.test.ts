// The secrets store on a real 3-member etcd: the shared contract (test/store/contract/), plus what only a shared
// store has: two nodes (two stores on one prefix) see each other's writes, race on one secret with exactly one
// winner, refuse a node that holds another master key, and show every node's secret events with who made them.
import t from 'tap'
import { openEtcdSecretsStore } from '../../daemon/store/etcd/etcd-secrets-store.js'
import { generateKey } from '../../daemon/store/crypto.js'
import { SecretValue } from '../../daemon/secret-value.js'
import type { SecretsStore } from '../../daemon/store/secrets-store.js'
import { EventBus, type NfsEvent } from '../../daemon/events.js'
import { freshPrefix, startEtcdNamespace } from '../helpers/etcd-cluster.js'
import { secretsStoreContract } from './contract/secrets-store-contract.js'
import { silentLogger } from './helpers.js'
import { requireEtcd } from '../helpers/requires.js'

requireEtcd(t)

const logger = silentLogger()

t.test('etcd secrets store', async t => {
  const etcd = await startEtcdNamespace(t)
  if (etcd === null) return
  const node = async (prefix: string, key: Buffer, name: string): Promise<SecretsStore> =>
    await openEtcdSecretsStore({ ns: etcd.connect({ prefix }).ns, node: name, key, logger })

  secretsStoreContract(t, {
    open: async (t) => {
      // Each case on a prefix of its own, so cases share the cluster but not the data.
      const prefix = freshPrefix()
      const key = generateKey()
      const store = await node(prefix, key, 'a')
      t.teardown(async () => { await store.close() })
      return { store, reopen: async () => await node(prefix, key, 'a') }
    }
  })

  t.test('events on every node: each node\'s bus shows every secret change once, with who made it', async t => {
    const prefix = freshPrefix()
    const key = generateKey()
    const a = await node(prefix, key, 'a')
    const b = await node(prefix, key, 'b')
    t.teardown(async () => { await a.close(); await b.close() })
    const follow = (store: SecretsStore): NfsEvent[] => {
      const bus = new EventBus()
      const got: NfsEvent[] = []
      bus.subscribe(e => got.push(e))
      bus.follow({ store })
      return got
    }
    const onA = follow(a)
    const onB = follow(b)
    await a.createWorkspace('lab', 'root', { owner: 'alice' })
    await a.createSecret('workspace:lab', 'TOKEN', new SecretValue('CANARY-events-1'), 'alice')
    await b.settle()
    await b.updateSecret('workspace:lab', 'TOKEN', new SecretValue('CANARY-events-2'), 'bob')
    await a.settle()
    await a.markUsed([{ scope: 'workspace:lab', name: 'TOKEN' }], '2030-01-01T00:00:00.000Z')
    await a.deleteSecret('workspace:lab', 'TOKEN', 'carol')
    await a.createSecret('workspace:lab', 'OTHER', new SecretValue('x'), 'alice')
    await a.deleteWorkspace('lab')
    await a.settle()
    await b.settle()
    const want = [['secret.created', 'alice', 'TOKEN'], ['secret.updated', 'bob', 'TOKEN'], ['secret.deleted', 'carol', 'TOKEN'], ['secret.created', 'alice', 'OTHER']]
    t.same(onA.map(e => [e.type, e.user, e.names?.[0]]), want, 'a: its own and b\'s; no event for a use mark or a workspace\'s deletion')
    t.same(onB.map(e => [e.type, e.user, e.names?.[0]]), want, 'b: the same')
    t.notMatch(JSON.stringify([onA, onB]), 'CANARY', 'no value in any event')
  })

  t.test('two nodes on one prefix: writes propagate, a race has one winner, another key is refused', async t => {
    const prefix = freshPrefix()
    const key = generateKey()
    const a = await node(prefix, key, 'a')
    const b = await node(prefix, key, 'b')
    t.teardown(async () => { await a.close(); await b.close() })
    const made = await a.createSecret('user:alice', 'TOKEN', new SecretValue('one'), 'alice')
    await b.settle()
    t.equal(b.getSecret('user:alice', 'TOKEN')?.version, made.version, 'b sees a\'s secret after settle()')
    t.equal(b.readValues([{ scope: 'user:alice', name: 'TOKEN' }]).get('user:alice\0TOKEN')?.reveal(), 'one')
    const tries = await Promise.allSettled([
      a.updateSecret('user:alice', 'TOKEN', new SecretValue('from-a'), 'alice', { ifVersion: 1 }),
      b.updateSecret('user:alice', 'TOKEN', new SecretValue('from-b'), 'alice', { ifVersion: 1 })
    ])
    t.same(tries.map(r => r.status).sort(), ['fulfilled', 'rejected'], 'exactly one wins')
    const lost = tries.find((r): r is PromiseRejectedResult => r.status === 'rejected')!
    t.equal((lost.reason as { code: string }).code, 'NFS_ERR_CONFLICT')
    await a.settle()
    await b.settle()
    t.equal(a.readValues([{ scope: 'user:alice', name: 'TOKEN' }]).get('user:alice\0TOKEN')?.reveal(),
      b.readValues([{ scope: 'user:alice', name: 'TOKEN' }]).get('user:alice\0TOKEN')?.reveal(), 'both nodes agree on the winner')
    await t.rejects(node(prefix, generateKey(), 'c'), { code: 'NFS_ERR_KEY' }, 'a node with another master key is refused')
  })

  t.test('a store whose sealed values pass the client\'s 4 MiB receive limit opens on another node', async t => {
    // The mirror read each prefix in one answer: 60 values of 64 KiB (~88 KiB sealed, ~5.2 MiB) failed for good
    // with RESOURCE_EXHAUSTED, so no further node could start. It reads in pages now (32 sealed values at most).
    const prefix = freshPrefix()
    const key = generateKey()
    const a = await node(prefix, key, 'a')
    t.teardown(async () => { await a.close() })
    const value = 'v'.repeat(64 * 1024)
    const names = Array.from({ length: 60 }, (_, i) => `BIG_${i}`)
    for (let i = 0; i < names.length; i += 6) {
      await Promise.all(names.slice(i, i + 6).map(async n => await a.createSecret('user:alice', n, new SecretValue(value), 'alice')))
    }
    const b = await node(prefix, key, 'b')
    t.teardown(async () => { await b.close() })
    const read = b.readValues(names.map(name => ({ scope: 'user:alice' as const, name })))
    t.equal([...read.values()].filter(v => v.reveal() === value).length, names.length, 'b opened and reads every value')
  })

  // Last: it takes the cluster's quorum away.
  t.test('deleting a workspace that does not exist answers not found, even without quorum', async t => {
    // Review finding: the delete took its tombstone lease before it looked for the workspace, so without quorum (or a
    // slow lease grant) a name that does not exist answered NFS_ERR_CLUSTER_UNAVAILABLE.
    const store = await node(freshPrefix(), generateKey(), 'a')
    t.teardown(async () => { await store.close() })
    await etcd.cluster.kill(1)
    await etcd.cluster.kill(2)
    t.teardown(async () => { await etcd.cluster.restart(1); await etcd.cluster.restart(2) })
    await t.rejects(store.deleteWorkspace('nope'), { code: 'NFS_ERR_WORKSPACE_NOT_FOUND' })
    await t.rejects(store.deleteWorkspace('nope', { ifVersion: 1 }), { code: 'NFS_ERR_CONFLICT' }, 'with If-Match: the version is not there')
  })
})
