// `nf-secretsd cluster import` on a real etcd: a single node's secrets, workspaces and live runs reach an empty prefix
// under the same key (values decrypt on the cluster side, nothing is re-encrypted), finished runs stay behind, a
// second import is refused, and an import cut short is refused by the nodes and can be run again.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { clusterImport, clusterImportWatches } from '../../daemon/cluster/import.js'
import { rootHash } from '../../daemon/cluster/watch-root-keys.js'
import { openWatchRootStore } from '../../daemon/store/watch-roots.js'
import { connectEtcd } from '../../daemon/store/etcd/etcd-client.js'
import { openEtcdRunLedger } from '../../daemon/store/etcd/etcd-run-ledger.js'
import { openEtcdSecretsStore } from '../../daemon/store/etcd/etcd-secrets-store.js'
import { encodeKey } from '../../daemon/store/key.js'
import { generateKey } from '../../daemon/store/crypto.js'
import { openRunLedger } from '../../daemon/store/run-ledger.js'
import { openSecretsStore } from '../../daemon/store/secrets-store.js'
import { SecretValue } from '../../daemon/secret-value.js'
import { startEtcdCluster } from '../helpers/etcd-cluster.js'
import { ROOT } from '../helpers/daemon.js'
import { intentRecord } from '../store/contract/run-ledger-contract.js'
import { silentLogger, tempDir } from '../store/helpers.js'
import { requireEtcd } from '../helpers/requires.js'

requireEtcd(t)

const logger = silentLogger()
const CANARY = 'CANARY-import-3c1d-do-not-leak'

t.test('cluster import', async t => {
  const cluster = await startEtcdCluster(t)
  if (cluster === null) return
  const stateDir = tempDir(t)
  const key = generateKey()
  const store = await openSecretsStore({ path: join(stateDir, 'store.json'), key, logger })
  await store.createWorkspace('lab', 'root', { owner: 'alice' })
  await store.createSecret('workspace:lab', 'DB_PASS', new SecretValue(CANARY), 'alice')
  await store.createSecret('user:bob', 'TOKEN', new SecretValue('bob-token'), 'bob')
  await store.close()
  const ledger = await openRunLedger(join(stateDir, 'runs.json'))
  await ledger.insert(intentRecord(1))
  const done = await ledger.insert(intentRecord(2))
  await ledger.update(done.runId, 1, r => ({ ...r, state: 'completed', targets: { hpc: { ...r.targets.hpc!, state: 'revoked' } } }))
  await ledger.close()
  // The single node's watch roots: alice's own and an admin's, as watches.json holds them.
  const watchFile = await openWatchRootStore(join(stateDir, 'watches.json'))
  const w = { depth: 3, workspace: null, targets: ['hpc'], poll: false, intervalMs: 1000, createdAt: '2026-12-01T10:00:00.000Z' }
  await watchFile.add({ ...w, root: '/data/alice/runs', uid: 1001, user: 'alice' })
  await watchFile.add({ ...w, root: '/data/shared', uid: 0, user: 'root' })
  const shared = async (ns: typeof conn.ns): Promise<Record<string, { root: string, uid: number, user: string, mod: string }>> => {
    const out: Record<string, { root: string, uid: number, user: string, mod: string }> = {}
    for (const kv of (await ns.getAll().prefix('watches/').exec()).kvs) out[kv.key.toString()] = { ...JSON.parse(kv.value.toString()) as { root: string, uid: number, user: string }, mod: kv.mod_revision }
    return out
  }

  const prefix = `/nfs-test/${randomBytes(6).toString('hex')}/`
  const conn = connectEtcd({ endpoints: cluster.endpoints, prefix })
  t.teardown(() => { conn.close() })
  t.same(await clusterImport({ ns: conn.ns, stateDir, key }), { secrets: 2, workspaces: 1, runs: 1, watches: 2, keyId: (await import('../../daemon/store/crypto.js')).keyId(key) })
  await t.rejects(clusterImport({ ns: conn.ns, stateDir, key }), { code: 'NFS_ERR_CONFLICT' }, 'only into an empty prefix')

  const cs = await openEtcdSecretsStore({ ns: conn.ns, node: 'login1', key, logger })
  t.teardown(async () => { await cs.close() })
  t.same(cs.listSecrets(['workspace:lab', 'user:bob']).map(s => `${s.scope}/${s.name}@${s.version}`), ['user:bob/TOKEN@1', 'workspace:lab/DB_PASS@1'])
  t.equal(cs.readValues([{ scope: 'workspace:lab', name: 'DB_PASS' }]).get('workspace:lab\0DB_PASS')?.reveal(), CANARY, 'the same key opens the imported value')
  t.same(cs.getWorkspace('lab')?.members, { alice: 'owner' })
  const cl = await openEtcdRunLedger({ ns: conn.ns, node: 'login1' })
  t.teardown(async () => { await cl.close() })
  t.same(cl.all().map(r => r.runId), [intentRecord(1).runId], 'only the run that still needs an owner')
  const roots = await shared(conn.ns)
  t.match(roots[`watches/${rootHash('/data/alice/runs')}`], { root: '/data/alice/runs', uid: 1001, user: 'alice' }, 'the watch roots with their owners')
  t.match(roots[`watches/${rootHash('/data/shared')}`], { root: '/data/shared', uid: 0, user: 'root' })
  t.equal(Object.keys(roots).length, 2)
  t.same((await conn.ns.getAll().prefix('wown/').keys()), [], 'no poller yet: the first node that can see a root claims it')
  const raw = JSON.stringify(await conn.ns.getAll().prefix('').strings())
  t.notMatch(raw, CANARY, 'no value in etcd, only ciphertext')

  // A cut-short import: the marker is there and meta/store is not; nodes refuse, a new import starts over.
  const p2 = `/nfs-test/${randomBytes(6).toString('hex')}/`
  const c2 = connectEtcd({ endpoints: cluster.endpoints, prefix: p2 })
  t.teardown(() => { c2.close() })
  await c2.ns.put('meta/import').value('{}').exec()
  await c2.ns.put('smeta/user:bob/HALF').value('{}').exec()
  await t.rejects(openEtcdSecretsStore({ ns: c2.ns, node: 'x', key, logger }), { code: 'NFS_ERR_STORE_UNREADABLE' })

  // The command as an admin types it: the cluster section and the key file from the config.
  const keyFile = join(tempDir(t), 'master.key')
  writeFileSync(keyFile, encodeKey(key), { mode: 0o600 })
  const cfg = join(tempDir(t), 'config.json')
  writeFileSync(cfg, JSON.stringify({ keyFile, cluster: { nodeName: 'login1', etcd: { endpoints: cluster.endpoints, prefix: p2 } } }))
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/daemon/main.js'), 'cluster', 'import', '--mode', 'system', '--config', cfg, '--state-dir', stateDir], { encoding: 'utf8', timeout: 60_000 })
  t.equal(r.status, 0, r.stderr)
  t.equal((JSON.parse(r.stdout) as { secrets: number }).secrets, 2)
  const again = await openEtcdSecretsStore({ ns: c2.ns, node: 'x', key, logger })
  t.teardown(async () => { await again.close() })
  t.equal(again.getSecret('user:bob', 'HALF'), undefined, 'the half import was replaced')
  t.equal(again.counts().secrets, 2)
  const p2roots = await shared(c2.ns)
  t.equal(Object.keys(p2roots).length, 2, 'the watch roots came with it')

  // `cluster import watches`, a node joining a running cluster: create-only, so again and again it changes nothing
  // already shared, and copies a root the file gained since.
  const importWatches = (): ReturnType<typeof spawnSync> => spawnSync(process.execPath, [join(ROOT, 'dist/daemon/main.js'), 'cluster', 'import', 'watches', '--mode', 'system', '--config', cfg, '--state-dir', stateDir], { encoding: 'utf8', timeout: 60_000 })
  const once = importWatches()
  t.equal(once.status, 0, String(once.stderr))
  t.same(JSON.parse(String(once.stdout)), { watches: 0, present: 2 }, 'roots already shared are left as they are')
  await watchFile.add({ ...w, root: '/data/alice/more', uid: 1001, user: 'alice' })
  const twice = importWatches()
  t.same(JSON.parse(String(twice.stdout)), { watches: 1, present: 2 }, 'a new root is copied')
  const after = await shared(c2.ns)
  t.equal(Object.keys(after).length, 3)
  for (const [k, v] of Object.entries(p2roots)) t.equal(after[k]?.mod, v.mod, `${v.root}: not written again`)
  t.match(after[`watches/${rootHash('/data/alice/more')}`], { uid: 1001, user: 'alice' })

  const p3 = `/nfs-test/${randomBytes(6).toString('hex')}/`
  const c3 = connectEtcd({ endpoints: cluster.endpoints, prefix: p3 })
  t.teardown(() => { c3.close() })
  await t.rejects(clusterImportWatches({ ns: c3.ns, stateDir }), { code: 'NFS_ERR_CONFLICT' }, 'only into a cluster that has its store')
  t.same(await c3.ns.getAll().prefix('').keys(), [], 'and nothing written')
})
