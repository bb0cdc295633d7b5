import t from 'tap'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openSecretsStore } from '../../daemon/store/secrets-store.js'
import { generateKey } from '../../daemon/store/crypto.js'
import { SecretValue } from '../../daemon/secret-value.js'
import type { StoreData } from '../../daemon/store/store-format.js'
import { sha256File, silentLogger, tempDir, tinyTmpfs } from './helpers.js'
import type { Teardown } from './helpers.js'
import { secretsStoreContract } from './contract/secrets-store-contract.js'
import { whyNotRoot } from '../helpers/requires.js'

const CANARY = 'CANARY-9d1e4b-do-not-leak'
const logger = silentLogger()
const v = (s: string): SecretValue => new SecretValue(s)

async function fresh (t: Teardown, dir = tempDir(t)): Promise<{ dir: string, path: string, key: Buffer, store: Awaited<ReturnType<typeof openSecretsStore>> }> {
  const path = join(dir, 'store.json')
  const key = generateKey()
  const store = await openSecretsStore({ path, key, logger })
  t.teardown(async () => { await store.close() })
  return { dir, path, key, store }
}

t.test('create, list, read values, update, delete; versions count changes; reopen keeps all', async t => {
  const { dir, path, key, store } = await fresh(t)
  const dirMode = statSync(dir).mode
  const a = await store.createSecret('user:alice', 'TOKEN', v(CANARY), 'alice')
  t.equal(a.version, 1)
  t.equal(a.lastUsed, null)
  await store.createSecret('workspace:genomics', 'DB_PASS', v('pw1'), 'root')
  await store.createSecret('user:alice', 'A_FIRST', v('x'), 'alice')
  await t.rejects(store.createSecret('user:alice', 'TOKEN', v('y'), 'alice'), { code: 'NFS_ERR_SECRET_EXISTS' })

  t.same(store.listSecrets(['workspace:genomics', 'user:alice']).map(s => `${s.scope}/${s.name}`),
    ['user:alice/A_FIRST', 'user:alice/TOKEN', 'workspace:genomics/DB_PASS'], 'sorted by scope then name, filtered')
  t.same(store.listSecrets(['user:bob']), [])
  t.notOk('sealed' in (store.getSecret('user:alice', 'TOKEN') ?? {}), 'metadata only')

  const u = await store.updateSecret('workspace:genomics', 'DB_PASS', v('pw2'), 'bob')
  t.equal(u.version, 2)
  t.equal(u.updatedBy, 'bob')
  t.equal(u.createdBy, 'root')
  await t.rejects(store.updateSecret('user:bob', 'NOPE', v('z'), 'bob'), { code: 'NFS_ERR_SECRET_NOT_FOUND' })

  const vals = store.readValues([{ scope: 'user:alice', name: 'TOKEN' }, { scope: 'workspace:genomics', name: 'DB_PASS' }, { scope: 'user:bob', name: 'NOPE' }])
  t.equal(vals.get('user:alice\0TOKEN')?.reveal(), CANARY)
  t.equal(vals.get('workspace:genomics\0DB_PASS')?.reveal(), 'pw2')
  t.equal(vals.size, 2, 'absent entries are left out')

  await store.markUsed([{ scope: 'user:alice', name: 'TOKEN' }], '2030-01-01T00:00:00.000Z')
  t.equal(store.getSecret('user:alice', 'TOKEN')?.lastUsed, '2030-01-01T00:00:00.000Z')
  t.equal(store.getSecret('user:alice', 'TOKEN')?.version, 1, 'lastUsed does not bump the version')

  const d = await store.deleteSecret('user:alice', 'A_FIRST', 'alice')
  t.equal(d.name, 'A_FIRST')
  await t.rejects(store.deleteSecret('user:alice', 'A_FIRST', 'alice'), { code: 'NFS_ERR_SECRET_NOT_FOUND' })
  t.same(store.counts(), { secrets: 2, workspaces: 0 })

  t.equal(statSync(path).mode & 0o777, 0o600)
  t.equal(statSync(dir).mode, dirMode, 'state dir untouched')
  t.same(readdirSync(dir), ['store.json'], 'no temp files')
  t.notOk(readFileSync(path).includes(CANARY), 'the canary is nowhere in the file bytes')
  t.notOk(readFileSync(path).includes(Buffer.from(CANARY).toString('base64').slice(0, 12)), 'nor in base64')

  await store.close()
  const again = await openSecretsStore({ path, key, logger })
  t.teardown(async () => { await again.close() })
  t.same(again.listSecrets(['user:alice', 'workspace:genomics']), store.listSecrets(['user:alice', 'workspace:genomics']))
  t.equal(again.readValues([{ scope: 'user:alice', name: 'TOKEN' }]).get('user:alice\0TOKEN')?.reveal(), CANARY)
  await t.rejects(store.createSecret('user:alice', 'LATE', v('x'), 'alice'), { code: 'NFS_ERR_STORAGE' }, 'closed store refuses writes')
})

t.test('malformed scope or name pairs are refused as a last guard', async t => {
  const { store } = await fresh(t)
  for (const [scope, name] of [['user:', 'OK_NAME'], ['team:x', 'OK_NAME'], ['user:a', 'bad name'], ['user:a', 'X'], ['user:a\0b', 'OK_NAME']]) {
    await t.rejects(store.createSecret(scope as 'user:a', name as string, v('x'), 'a'), { code: 'NFS_ERR_BAD_REQUEST' }, `${JSON.stringify(scope)} ${name}`)
  }
  t.same(store.counts(), { secrets: 0, workspaces: 0 })
})

t.test('workspaces: CRUD, members and groups, versions, deleting removes its secrets', async t => {
  const { path, key, store } = await fresh(t)
  const ws = await store.createWorkspace('genomics', 'root')
  t.equal(ws.version, 1)
  t.same(ws.members, {})
  await t.rejects(store.createWorkspace('genomics', 'root'), { code: 'NFS_ERR_WORKSPACE_EXISTS' })
  t.equal((await store.setMember('genomics', 'alice', 'owner')).version, 2)
  t.equal((await store.setMember('genomics', 'alice', 'launch')).members.alice, 'launch')
  const g = await store.setGroup('genomics', 'bio', 'view')
  t.same(g.groups, { bio: 'view' })
  t.equal(g.version, 4)
  await t.rejects(store.setMember('genomics', 'bob', null), { code: 'NFS_ERR_MEMBER_NOT_FOUND' })
  await t.rejects(store.setGroup('genomics', 'nogroup', null), { code: 'NFS_ERR_MEMBER_NOT_FOUND' })
  await t.rejects(store.setMember('nope', 'bob', 'view'), { code: 'NFS_ERR_WORKSPACE_NOT_FOUND' })
  t.same((await store.setMember('genomics', 'alice', null)).members, {})

  const copy = store.getWorkspace('genomics')
  if (copy !== undefined) copy.members.mallory = 'owner'
  t.same(store.getWorkspace('genomics')?.members, {}, 'returned objects are copies')

  await store.createWorkspace('chem', 'root')
  t.same(store.listWorkspaces().map(w => w.name), ['chem', 'genomics'])
  await store.createSecret('workspace:genomics', 'DB_PASS', v('x'), 'root')
  await store.createSecret('workspace:chem', 'DB_PASS', v('y'), 'root')
  await store.deleteWorkspace('genomics')
  await t.rejects(store.deleteWorkspace('genomics'), { code: 'NFS_ERR_WORKSPACE_NOT_FOUND' })
  t.same(store.counts(), { secrets: 1, workspaces: 1 })
  const onDisk = JSON.parse(readFileSync(path, 'utf8')) as StoreData
  t.same(onDisk.secrets.map(s => s.scope), ['workspace:chem'], 'the deletion reached the disk')
  t.same(onDisk.workspaces.map(w => w.name), ['chem'])
  t.ok(key)
})

t.test('concurrent mutations are serialised and all reach the disk', async t => {
  const { path, key, store } = await fresh(t)
  await Promise.all(Array.from({ length: 30 }, async (_, i) => await store.createSecret('user:alice', `S_${i}`, v(`val${i}`), 'alice')))
  await Promise.all(Array.from({ length: 10 }, async () => await store.updateSecret('user:alice', 'S_0', v('again'), 'alice')))
  t.equal(store.getSecret('user:alice', 'S_0')?.version, 11)
  await store.close()
  const again = await openSecretsStore({ path, key, logger })
  t.teardown(async () => { await again.close() })
  t.equal(again.counts().secrets, 30)
  t.equal(again.getSecret('user:alice', 'S_0')?.version, 11)
})

t.test('a wrong key and a corrupt or tampered store throw the coded error and leave the file byte for byte', async t => {
  const { path, key, store } = await fresh(t)
  await store.createSecret('user:alice', 'TOKEN', v(CANARY), 'alice')
  await store.createSecret('user:bob', 'TOKEN', v('bobs'), 'bob')
  await store.close()
  const good = readFileSync(path, 'utf8')

  const before = sha256File(path)
  await t.rejects(openSecretsStore({ path, key: generateKey(), logger }), { code: 'NFS_ERR_KEY' })
  t.equal(sha256File(path), before, 'wrong key: unchanged')

  const data = JSON.parse(good) as StoreData
  const [s0, s1] = data.secrets
  if (s0 === undefined || s1 === undefined) throw new Error('two secrets expected')
  const swapped = { ...data, secrets: [{ ...s0, sealed: s1.sealed }, { ...s1, sealed: s0.sealed }] }
  const variants: Array<[string, string, string]> = [
    ['truncated', good.slice(0, good.length / 2), 'NFS_ERR_STORE_UNREADABLE'],
    ['not an object', '[]', 'NFS_ERR_STORE_UNREADABLE'],
    ['unknown format', JSON.stringify({ ...data, format: 2 }), 'NFS_ERR_STORE_UNREADABLE'],
    ['ciphertexts moved between entries', JSON.stringify(swapped), 'NFS_ERR_STORE_UNREADABLE'],
    ['a malformed record', JSON.stringify({ ...data, secrets: [{ ...s0, version: 'x' }] }), 'NFS_ERR_STORE_UNREADABLE'],
    ['duplicated record', JSON.stringify({ ...data, secrets: [s0, s0] }), 'NFS_ERR_STORE_UNREADABLE']
  ]
  for (const [what, text, code] of variants) {
    writeFileSync(path, text)
    const sum = sha256File(path)
    await t.rejects(openSecretsStore({ path, key, logger }), { code }, what)
    t.equal(sha256File(path), sum, `${what}: unchanged`)
  }
})

t.test('a failed write (ENOSPC) leaves memory and disk as they were', { skip: whyNotRoot() }, async t => { // a tmpfs mount
  const dir = tinyTmpfs(t, '64k')
  const { path, key, store } = await fresh(t, dir)
  await store.createSecret('user:alice', 'SMALL', v('x'), 'alice')
  const before = sha256File(path)
  // 60 values of 1 KiB (about 1.4 KiB sealed) cannot fit in 64 KiB in one write.
  let failed: { code?: string } | null = null
  for (let i = 0; i < 60 && failed === null; i++) {
    const snapshot = sha256File(path)
    const count = store.counts().secrets
    failed = await store.createSecret('user:alice', `BIG_${i}`, v('y'.repeat(1024)), 'alice').then(() => null, (e: { code?: string }) => e)
    if (failed !== null) {
      t.equal(failed.code, 'NFS_ERR_STORAGE')
      t.equal(sha256File(path), snapshot, 'disk unchanged')
      t.equal(store.counts().secrets, count, 'memory unchanged')
      t.equal(store.getSecret('user:alice', `BIG_${i}`), undefined)
    }
  }
  t.ok(failed, 'the disk filled up')
  t.not(sha256File(path), before)
  t.same(readdirSync(dir), ['store.json'], 'no temp file left')
  const n = store.counts().secrets
  await store.close()
  const again = await openSecretsStore({ path, key, logger })
  t.teardown(async () => { await again.close() })
  t.equal(again.counts().secrets, n, 'the file is readable and holds what memory held')
  await again.deleteSecret('user:alice', 'BIG_0', 'alice')
  t.equal(again.counts().secrets, n - 1, 'writes work again once there is room')
})

// The shared contract (test/store/contract/) over the file store: each case on a store.json of its own.
secretsStoreContract(t, {
  open: async (t) => {
    const dir = tempDir(t)
    const path = join(dir, 'store.json')
    const key = generateKey()
    const store = await openSecretsStore({ path, key, logger })
    t.teardown(async () => { await store.close() })
    return { store, reopen: async () => await openSecretsStore({ path, key, logger }) }
  }
})
