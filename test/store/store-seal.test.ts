// The seal over store.json (store-seal.ts, issue 18): every write of the store and of rotate-key carries one that
// matches under the key; a start that finds it matching skips the values' decryption, and a start that finds it
// absent, stale or wrong verifies every value as before, so nothing refused before is accepted now.
import t from 'tap'
import { createHash, createHmac } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openSecretsStore, rotateKey } from '../../daemon/store/secrets-store.js'
import { loadKey } from '../../daemon/store/key.js'
import { generateKey } from '../../daemon/store/crypto.js'
import { sealedStoreText, sealKey, sealMatches } from '../../daemon/store/store-seal.js'
import { validateStore } from '../../daemon/store/store-format.js'
import type { StoreData } from '../../daemon/store/store-format.js'
import { SecretValue } from '../../daemon/secret-value.js'
import { sha256File, silentLogger, tempDir } from './helpers.js'
import type { Teardown } from './helpers.js'

const logger = silentLogger()
const PREFIX_LEN = '{"seal":"'.length + 64 + '",'.length

/** A store written by the store itself: two secrets, closed. */
async function written (t: Teardown): Promise<{ stateDir: string, path: string, keyFile: string, key: Buffer }> {
  const stateDir = tempDir(t)
  const path = join(stateDir, 'store.json')
  const { key, keyFile } = await loadKey({ mode: 'user', stateDir })
  const store = await openSecretsStore({ path, key, logger })
  await store.createSecret('user:alice', 'TOKEN', new SecretValue('tok-1'), 'alice')
  await store.createSecret('user:alice', 'OTHER', new SecretValue('other-2'), 'alice')
  await store.close()
  return { stateDir, path, keyFile, key }
}

/** The file's JSON with the first value's ciphertext changed by one base64 character (still well formed). */
function flipValue (data: StoreData): StoreData {
  const s = data.secrets[0]!.sealed
  s.data = (s.data[0] === 'A' ? 'B' : 'A') + s.data.slice(1)
  return data
}

/** `{"seal":"<hex>",<rest>`: the file with its seal replaced by `hex`, every other byte kept. */
function withSeal (bytes: Buffer, hex: string): string {
  return `{"seal":"${hex}",${bytes.subarray(PREFIX_LEN).toString('utf8')}`
}

t.test('a store written by the store is sealed, and an older reader still reads it', async t => {
  const { path, key } = await written(t)
  const bytes = readFileSync(path)
  t.ok(bytes.toString('utf8').startsWith('{"seal":"'), 'the seal is the first member')
  t.ok(sealMatches(bytes, key), 'it matches under the key')
  t.notOk(sealMatches(bytes, generateKey()), 'and not under another key')
  // What a daemon before the seal does with the file: JSON.parse and the format checks, format 1 as ever.
  const old = validateStore(JSON.parse(bytes.toString('utf8')), path)
  t.equal(old.format, 1)
  t.equal(old.secrets.length, 2)
})

t.test('a matching seal skips the values\' decryption at open; a value is still checked when it is decrypted', async t => {
  // A file a holder of the key sealed over a damaged value: opens (its values were not decrypted at open, which is
  // the change), and the damaged value still fails its own AEAD check when read. Before the seal, open refused it.
  const { path, key } = await written(t)
  const data = flipValue(JSON.parse(readFileSync(path, 'utf8')) as StoreData)
  writeFileSync(path, sealedStoreText(data, key), { mode: 0o600 })
  const store = await openSecretsStore({ path, key, logger })
  t.teardown(async () => { await store.close() })
  t.equal(store.counts().secrets, 2)
  t.throws(() => store.readValues([{ scope: 'user:alice', name: 'TOKEN' }]), { code: 'NFS_ERR_KEY' })
  t.equal(store.readValues([{ scope: 'user:alice', name: 'OTHER' }]).get('user:alice\0OTHER')?.reveal(), 'other-2')
})

t.test('a value changed with the seal left is refused at open, the file untouched', async t => {
  const { path, key } = await written(t)
  const bytes = readFileSync(path)
  const data = flipValue(JSON.parse(bytes.toString('utf8')) as StoreData)
  // The seal of the file as written, in front of the changed rest.
  const hex = bytes.toString('latin1', 9, 73)
  const changed = `{"seal":"${hex}",${JSON.stringify({ ...data, seal: undefined }).slice(1)}\n`
  writeFileSync(path, changed, { mode: 0o600 })
  t.notOk(sealMatches(readFileSync(path), key), 'the seal no longer matches')
  const before = sha256File(path)
  await t.rejects(openSecretsStore({ path, key, logger }), { code: 'NFS_ERR_STORE_UNREADABLE' })
  t.equal(sha256File(path), before, 'byte for byte unchanged')
})

t.test('a seal recomputed without the key is refused at open, the file untouched', async t => {
  const { path, key } = await written(t)
  const data = flipValue(JSON.parse(readFileSync(path, 'utf8')) as StoreData)
  const forged = Buffer.from(sealedStoreText(data, generateKey()))
  const body = Buffer.concat([Buffer.from('{'), forged.subarray(PREFIX_LEN)])
  // Three forgeries an attacker without the key can make: a seal under a key of their own, a plain SHA-256 of the
  // rest, and an HMAC keyed with the key id (public, in the file).
  for (const hex of [
    forged.toString('latin1', 9, 73),
    createHash('sha256').update(body).digest('hex'),
    createHmac('sha256', data.keyId).update(body).digest('hex')
  ]) {
    writeFileSync(path, withSeal(forged, hex), { mode: 0o600 })
    const before = sha256File(path)
    await t.rejects(openSecretsStore({ path, key, logger }), { code: 'NFS_ERR_STORE_UNREADABLE' })
    t.equal(sha256File(path), before, 'byte for byte unchanged')
  }
})

t.test('a store rewritten by an older daemon (stale seal) is verified whole, and sealed again at the next write', async t => {
  const { path, key } = await written(t)
  // An older daemon keeps the unknown member as it was and writes its own change: the seal is stale.
  const data = JSON.parse(readFileSync(path, 'utf8')) as StoreData & { seal: string }
  data.secrets[1]!.lastUsed = new Date().toISOString()
  writeFileSync(path, JSON.stringify(data) + '\n', { mode: 0o600 })
  t.notOk(sealMatches(readFileSync(path), key), 'stale')
  const store = await openSecretsStore({ path, key, logger })
  await store.createSecret('user:alice', 'THIRD', new SecretValue('3'), 'alice')
  await store.close()
  const after = readFileSync(path)
  t.ok(sealMatches(after, key), 'sealed again')
  t.equal((after.toString('utf8').match(/"seal"/g) ?? []).length, 1, 'one seal, never the stale one kept beside it')
})

t.test('rotate-key seals the store under the new key', async t => {
  const { stateDir, path, keyFile, key } = await written(t)
  const newKey = generateKey()
  await rotateKey({ stateDir, path, oldKey: key, keyFile, newKey })
  const bytes = readFileSync(path)
  t.ok(sealMatches(bytes, newKey), 'matches under the new key')
  t.notOk(sealMatches(bytes, key), 'not under the old one')
  const store = await openSecretsStore({ path, key: newKey, logger })
  t.teardown(async () => { await store.close() })
  t.equal(store.readValues([{ scope: 'user:alice', name: 'TOKEN' }]).get('user:alice\0TOKEN')?.reveal(), 'tok-1')
})

t.test('the seal key is derived, not the master key itself', async t => {
  const key = generateKey()
  t.equal(sealKey(key).length, 32)
  t.not(sealKey(key).toString('hex'), key.toString('hex'))
  t.same(sealKey(key), sealKey(Buffer.from(key)), 'the same for the same key')
})
