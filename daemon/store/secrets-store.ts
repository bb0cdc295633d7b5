// The encrypted secrets store (SPEC sections 3 and 4): store.json in the state dir, 0600, opened here. What a
// secrets store is: secrets-store-interface.ts; the file store itself: file-secrets-store.ts; its lastUsed marks:
// last-used-marks.ts. Their names are exported here too, where the daemon and the tests have always found them.
import { Low } from 'lowdb'
import type { Logger } from 'pino'
import { AtomicJsonFile, parseJsonText, readFileBytes, sweepTempFiles } from './atomic-file.js'
import { prestartVerifier, PRESTART_MIN_BYTES, verifyAside, type PrestartedVerifier } from './verify-aside.js'
import { sealedStoreText, sealMatches } from './store-seal.js'
import { realTimers, type Timers } from '../os/timers.js'
import { keyId } from './crypto.js'
import { emptyStore, validateStore, verifyKeyId } from './store-format.js'
import type { StoreData } from './store-format.js'
import { LowSecretsStore, type FileSecretsStore } from './file-secrets-store.js'
import { LAST_USED_FLUSH_MS } from './last-used-marks.js'

export { rotateKey } from './rotate-key.js'
export type { RotateKeyOptions, RotateKeyResult } from './rotate-key.js'
export type { SecretsStore, StoreChange, WriteOptions } from './secrets-store-interface.js'
export type { FileSecretsStore } from './file-secrets-store.js'
export { LAST_USED_FLUSH_MS, LAST_USED_MAX_WINDOWS } from './last-used-marks.js'

export interface OpenSecretsStoreOptions {
  path: string
  key: Buffer
  logger: Pick<Logger, 'info' | 'warn' | 'debug'>
  /** clock for createdAt/updatedAt; tests pin it */
  now?: () => Date
  /** how long lastUsed marks may wait in memory before a store write of their own (default 5 s) */
  lastUsedFlushMs?: number
  /** the timers of that write (tests move them by hand) */
  timers?: Timers
}

/**
 * Open (or create) the store at `path`. Every sealed value is decrypted once to prove the key and the file
 * before anything is served, unless the file's seal proves it is what a holder of the key wrote (store-seal.ts);
 * on any problem the file is left byte for byte as it was.
 */
export async function openSecretsStore (opts: OpenSecretsStoreOptions): Promise<FileSecretsStore> {
  const { store, verified } = await openSecretsStoreAside(opts)
  // A store that fails is dropped unclosed: it has no timer yet, and closing could write.
  await verified
  return store
}

/**
 * openSecretsStore, except that the values of a big store are verified in a worker thread (verify-aside.ts) while
 * the caller goes on: `verified` settles with the outcome, and until it resolves nothing may be served or written
 * (the daemon awaits it before it acts on runs). A malformed file or a wrong key id still rejects at once.
 */
export async function openSecretsStoreAside (opts: OpenSecretsStoreOptions): Promise<{ store: FileSecretsStore, verified: Promise<void> }> {
  // Every write is sealed (store-seal.ts), so that the next start can skip the values' decryption.
  const adapter = new AtomicJsonFile<StoreData>(opts.path, { mode: 0o600, serialize: (data: StoreData) => sealedStoreText(data, opts.key) })
  const id = keyId(opts.key)
  const db = new Low<StoreData>(adapter, emptyStore(id))
  const removed = await sweepTempFiles(opts.path)
  if (removed.length > 0) opts.logger.warn({ file: opts.path, removed }, 'removed temp files left by an interrupted write')
  let raw: { value: unknown, text: string } | null = null
  let sealed = false
  let early: PrestartedVerifier | null = null
  let verified = Promise.resolve()
  try {
    const bytes = await readFileBytes(opts.path)
    if (bytes !== null) {
      sealed = sealMatches(bytes, opts.key)
      // A big store without a matching seal has its values verified in a worker, started now so that the thread's
      // own start overlaps the parse and the checks below.
      if (!sealed && bytes.length >= PRESTART_MIN_BYTES) early = prestartVerifier()
      const text = bytes.toString('utf8')
      raw = { value: parseJsonText<unknown>(text, opts.path), text }
      db.data = validateStore(raw.value, opts.path)
      // The seal is the file's, not the store's: never kept in memory (the serializer writes a fresh one).
      delete (db.data as Partial<Record<'seal', unknown>>).seal
    }
  } catch (err) {
    early?.cancel()
    throw err
  }
  if (raw === null) {
    // Written at once so the file records which key the store belongs to from its first start.
    await adapter.write(db.data)
  } else if (sealed) {
    // Written by a holder of the key, which writes only values it sealed or verified: the key id is the one check
    // left (a wrong key cannot match the seal, but is named as NFS_ERR_KEY as before). Each value's own AEAD check
    // still runs whenever it is decrypted (readValues).
    verifyKeyId(db.data, opts.key, opts.path)
  } else {
    verified = verifyAside(db.data, raw.text, opts.key, opts.path, early)
    // Awaited by the caller; handled here so that a rejection before then is not an unhandled one.
    verified.catch(() => {})
  }
  opts.logger.info({ file: opts.path, keyId: id, secrets: db.data.secrets.length, workspaces: db.data.workspaces.length, sealed }, 'secrets store opened')
  const store = new LowSecretsStore(db, adapter, opts.key, opts.now ?? (() => new Date()), { flushMs: opts.lastUsedFlushMs ?? LAST_USED_FLUSH_MS, logger: opts.logger, timers: opts.timers ?? realTimers })
  return { store, verified }
}
