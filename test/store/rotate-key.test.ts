import t from 'tap'
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openSecretsStore, rotateKey } from '../../daemon/store/secrets-store.js'
import { encodeKey, loadKey, pendingKeyPath } from '../../daemon/store/key.js'
import { generateKey, keyId } from '../../daemon/store/crypto.js'
import { SecretValue } from '../../daemon/secret-value.js'
import type { StoreData } from '../../daemon/store/store-format.js'
import { sha256File, silentLogger, tempDir } from './helpers.js'
import type { Teardown } from './helpers.js'

const logger = silentLogger()
const CANARY = 'CANARY-rotate-51c0'

/** A user-mode state dir with a generated key and a store holding two secrets. */
async function seeded (t: Teardown): Promise<{ stateDir: string, path: string, keyFile: string, key: Buffer }> {
  const stateDir = tempDir(t)
  const path = join(stateDir, 'store.json')
  const { key, keyFile } = await loadKey({ mode: 'user', stateDir })
  const store = await openSecretsStore({ path, key, logger })
  await store.createSecret('user:alice', 'TOKEN', new SecretValue(CANARY), 'alice')
  await store.createSecret('workspace:genomics', 'DB_PASS', new SecretValue('pw'), 'root')
  await store.close()
  return { stateDir, path, keyFile, key }
}

async function valuesUnder (path: string, key: Buffer): Promise<string[]> {
  const store = await openSecretsStore({ path, key, logger })
  const vals = store.readValues([{ scope: 'user:alice', name: 'TOKEN' }, { scope: 'workspace:genomics', name: 'DB_PASS' }])
  await store.close()
  return [...vals.values()].map(v => v.reveal())
}

t.test('round trip: everything re-encrypted, the key file replaced, the old key refused', async t => {
  const { stateDir, path, keyFile, key } = await seeded(t)
  const versions = (JSON.parse(readFileSync(path, 'utf8')) as StoreData).secrets.map(s => s.version)
  const res = await rotateKey({ stateDir, path, oldKey: key, keyFile })
  t.equal(res.oldKeyId, keyId(key))
  t.equal(res.secrets, 2)
  const loaded = await loadKey({ mode: 'user', stateDir })
  t.equal(keyId(loaded.key), res.keyId)
  t.equal(statSync(keyFile).mode & 0o777, 0o600)
  t.equal(statSync(path).mode & 0o777, 0o600)
  t.notOk(existsSync(pendingKeyPath(keyFile)), 'no side file left')
  t.same(await valuesUnder(path, loaded.key), [CANARY, 'pw'])
  await t.rejects(openSecretsStore({ path, key, logger }), { code: 'NFS_ERR_KEY' })
  t.notOk(readFileSync(path).includes(CANARY))
  t.same((JSON.parse(readFileSync(path, 'utf8')) as StoreData).secrets.map(s => s.version), versions, 'versions kept')
})

t.test('a wrong old key is refused before anything is written', async t => {
  const { stateDir, path, keyFile } = await seeded(t)
  const sum = sha256File(path)
  const keySum = sha256File(keyFile)
  await t.rejects(rotateKey({ stateDir, path, oldKey: generateKey(), keyFile }), { code: 'NFS_ERR_KEY' })
  t.equal(sha256File(path), sum)
  t.equal(sha256File(keyFile), keySum)
  t.notOk(existsSync(pendingKeyPath(keyFile)))
})

t.test('crash after the side file was written: the next start drops it and keeps the old key', async t => {
  const { stateDir, path, keyFile, key } = await seeded(t)
  writeFileSync(pendingKeyPath(keyFile), encodeKey(generateKey()), { mode: 0o600 })
  const loaded = await loadKey({ mode: 'user', stateDir })
  t.ok(loaded.key.equals(key))
  t.equal(loaded.recovered, false)
  t.notOk(existsSync(pendingKeyPath(keyFile)))
  t.same(await valuesUnder(path, loaded.key), [CANARY, 'pw'])
})

t.test('crash after the store was rewritten: the next start finishes the rotation', async t => {
  const { stateDir, path, keyFile, key } = await seeded(t)
  const oldKeyText = readFileSync(keyFile)
  const res = await rotateKey({ stateDir, path, oldKey: key, keyFile })
  // Rebuild the exact state between steps 2 and 3: the new key still in the side file, the old one in place.
  renameSync(keyFile, pendingKeyPath(keyFile))
  writeFileSync(keyFile, oldKeyText, { mode: 0o600 })
  await t.rejects(openSecretsStore({ path, key, logger }), { code: 'NFS_ERR_KEY' }, 'the old key no longer opens it')
  const loaded = await loadKey({ mode: 'user', stateDir })
  t.equal(loaded.recovered, true)
  t.equal(keyId(loaded.key), res.keyId)
  t.notOk(existsSync(pendingKeyPath(keyFile)))
  t.same(await valuesUnder(path, loaded.key), [CANARY, 'pw'])
  const again = await loadKey({ mode: 'user', stateDir })
  t.ok(again.key.equals(loaded.key), 'stable afterwards')
})

t.test('system mode with a credential: the unfinished rotation is explained, not guessed', async t => {
  const { stateDir, path, keyFile, key } = await seeded(t)
  const creds = tempDir(t)
  writeFileSync(join(creds, 'master-key'), readFileSync(keyFile), { mode: 0o400 })
  await rotateKey({ stateDir, path, oldKey: key, keyFile })
  renameSync(keyFile, pendingKeyPath(keyFile))
  writeFileSync(keyFile, readFileSync(join(creds, 'master-key')), { mode: 0o600 })
  await t.rejects(loadKey({ mode: 'system', stateDir, keyFile, credentialsDirectory: creds }), { code: 'NFS_ERR_KEY' })
  t.ok(existsSync(pendingKeyPath(keyFile)), 'the side file is kept for the admin')
})

t.test('newKeyFile: the new key goes where the admin says, never over an existing file', async t => {
  const { stateDir, path, keyFile, key } = await seeded(t)
  const keySum = sha256File(keyFile)
  const out = join(tempDir(t), 'new.key')
  const res = await rotateKey({ stateDir, path, oldKey: key, keyFile, newKeyFile: out })
  t.equal(res.keyFile, out)
  t.equal(statSync(out).mode & 0o777, 0o600)
  t.equal(sha256File(keyFile), keySum, 'the current key file is left alone')
  const newKey = Buffer.from(readFileSync(out, 'utf8').trim(), 'base64')
  t.same(await valuesUnder(path, newKey), [CANARY, 'pw'])
  const sum = sha256File(path)
  await t.rejects(rotateKey({ stateDir, path, oldKey: newKey, keyFile, newKeyFile: out }), { code: 'NFS_ERR_KEY' })
  t.equal(sha256File(path), sum, 'store untouched when the destination exists')
})
