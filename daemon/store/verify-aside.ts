// Verifying a big store's values beside the rest of the start (issue 18: with 5,000 secrets their decryption was
// most of the start-up's growth with the state). verifyStore's checks exactly, in two parts: the key id here and
// at once, the values in a worker thread reading the same bytes the store was parsed from. The daemon awaits the
// result before anything acts on runs or listens, so a broken store still stops the start (exit 78) with the same
// error, and nothing has written the store file meanwhile.
import { Worker } from 'node:worker_threads'
import type { StoreData } from './store-format.js'
import { verifyKeyId, verifySecret, verifyStore } from './store-format.js'

/** Below this many values the worker's own start costs more than it saves: they are verified here, at once. */
export const VERIFY_ASIDE_MIN = 500

/**
 * Start verifying `data` (parsed from `text`) under `key`: resolves when every value decrypts, rejects with
 * verifyStore's error otherwise. A wrong key id throws at once. Should the worker fail to run (a missing file,
 * no memory), the values are verified on this thread instead: the answer never depends on the worker.
 */
export function verifyAside (data: StoreData, text: string, key: Buffer, file: string): Promise<void> {
  verifyKeyId(data, key, file)
  if (data.secrets.length < VERIFY_ASIDE_MIN) {
    verifyStore(data, key, file)
    return Promise.resolve()
  }
  return new Promise<number | null>(resolve => {
    let worker: Worker
    // A copy of its own: a Buffer may be a view of a shared pool, which the clone would carry over whole.
    const keyCopy = Uint8Array.from(key)
    try {
      worker = new Worker(new URL('./verify-worker.js', import.meta.url), { workerData: { text, key: keyCopy } })
    } catch {
      resolve(null)
      return
    } finally {
      keyCopy.fill(0)
    }
    worker.once('message', (bad: unknown) => { resolve(typeof bad === 'number' ? bad : null) })
    worker.once('error', () => { resolve(null) })
    worker.once('exit', () => { resolve(null) })
  }).then(bad => {
    // The failing record's error is made here, as verifyStore makes it; any doubt is settled by verifying here.
    if (bad !== null && bad >= 0 && bad < data.secrets.length) verifySecret(data.secrets[bad]!, key, file)
    if (bad !== -1) verifyStore(data, key, file)
  })
}
