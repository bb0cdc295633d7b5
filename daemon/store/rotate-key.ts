// `nf-secretsd rotate-key`: re-encrypt every value under a new key, offline (the daemon is stopped).
//
// Crash safety comes from the order of three durable steps:
//   1. the new key goes to a side file next to the key file (<keyFile>.rotating, 0600);
//   2. store.json is rewritten atomically, every value re-sealed, with the new keyId;
//   3. the side file is renamed over the key file.
// A crash before 2 leaves the store under the old key: the next loadKey() drops the side file. A crash between
// 2 and 3 leaves a store whose keyId is the side file's: the next loadKey() finishes step 3. After 3 it is done.
//
// System mode with the key from $CREDENTIALS_DIRECTORY (systemd LoadCredential=): that directory is read-only
// and only a copy. Run rotate-key outside the service, where it reads the credential's source file (by default
// /etc/nf-secretsd/master.key) and replaces it in place; or pass `newKeyFile` to have the new key written to a
// path you name (created 0600, never over an existing file) and the current key file left alone: the store is
// then under the new key and you must install that file as the credential before the next start.
import { constants, promises as fsp } from 'node:fs'
import { dirname } from 'node:path'
import type { Logger } from 'pino'
import { isCoded, nfsError } from '../errors.js'
import { generateKey, keyId, open, seal } from './crypto.js'
import { readJsonFile, writeFileAtomic } from './atomic-file.js'
import { encodeKey, pendingKeyPath } from './key.js'
import { validateStore, verifyStore } from './store-format.js'
import { sealedStoreText } from './store-seal.js'
import type { StoreData } from './store-format.js'

export interface RotateKeyOptions {
  stateDir: string
  /** store.json */
  path: string
  /** the key the store is under now (from loadKey) */
  oldKey: Buffer
  /** the key file in use (loadKey's keyFile): replaced by the new key at the end */
  keyFile: string
  /** write the new key here instead of replacing keyFile (keys that come from $CREDENTIALS_DIRECTORY) */
  newKeyFile?: string
  logger?: Pick<Logger, 'info'>
  /** for tests: a fixed new key instead of 32 fresh random bytes */
  newKey?: Buffer
}

export interface RotateKeyResult {
  oldKeyId: string
  keyId: string
  secrets: number
  /** where the new key now is */
  keyFile: string
}

async function fsyncDir (dir: string): Promise<void> {
  const dh = await fsp.open(dir, constants.O_RDONLY | constants.O_DIRECTORY)
  try {
    await dh.sync()
  } finally {
    await dh.close()
  }
}

/** Re-seal every value of a verified store under `newKey`. Versions stay: the values themselves did not change. */
export function resealStore (data: StoreData, oldKey: Buffer, newKey: Buffer): StoreData {
  return {
    ...data,
    keyId: keyId(newKey),
    secrets: data.secrets.map(s => ({ ...s, sealed: seal(newKey, s.scope, s.name, open(oldKey, s.scope, s.name, s.sealed)) }))
  }
}

export async function rotateKey (opts: RotateKeyOptions): Promise<RotateKeyResult> {
  const raw = await readJsonFile<unknown>(opts.path)
  if (raw === null) throw nfsError('NFS_ERR_STORE_UNREADABLE', [opts.path, 'it does not exist; start the daemon once to create it'])
  const data = validateStore(raw, opts.path)
  verifyStore(data, opts.oldKey, opts.path)

  const newKey = opts.newKey ?? generateKey()
  const newId = keyId(newKey)
  if (newId === data.keyId) throw nfsError('NFS_ERR_KEY', [opts.keyFile, 'the new key is the key in use'])

  // Step 1: the new key is on disk, durably, before anything is encrypted under it.
  const dest = opts.newKeyFile ?? pendingKeyPath(opts.keyFile)
  try {
    await writeFileAtomic(dest, encodeKey(newKey), 0o600, { noClobber: opts.newKeyFile !== undefined })
  } catch (err) {
    if (isCoded(err, 'NFS_ERR_STORAGE') && (err.cause as { code?: string } | undefined)?.code === 'EEXIST') {
      throw nfsError('NFS_ERR_KEY', [dest, 'it already exists; name a new file for the new key'], err)
    }
    throw err
  }

  // Step 2: the store, whole, under the new key.
  // Sealed under the new key (store-seal.ts), as the daemon seals its own writes: the next start skips the
  // values' decryption, which verifyStore above and the re-sealing here have just done.
  await writeFileAtomic(opts.path, sealedStoreText(resealStore(data, opts.oldKey, newKey), newKey), 0o600)

  // Step 3: the key file. Skipped when the admin installs the new key themselves.
  if (opts.newKeyFile === undefined) {
    try {
      await fsp.rename(dest, opts.keyFile)
      await fsyncDir(dirname(opts.keyFile))
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'EIO'
      throw nfsError('NFS_ERR_STORAGE', [opts.keyFile, `${code}; the store is under the new key in ${dest}: run mv ${dest} ${opts.keyFile}`], err)
    }
  }
  opts.logger?.info({ file: opts.path, oldKeyId: data.keyId, keyId: newId, secrets: data.secrets.length, keyFile: opts.newKeyFile ?? opts.keyFile }, 'key rotated')
  return { oldKeyId: data.keyId, keyId: newId, secrets: data.secrets.length, keyFile: opts.newKeyFile ?? opts.keyFile }
}
