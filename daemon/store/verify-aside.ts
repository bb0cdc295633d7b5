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
 * A store file this big likely holds VERIFY_ASIDE_MIN values or more (a record is 300-400 bytes): its worker is
 * started before the file is read (prestartVerifier), so that the thread's own start (30-40 ms: Node's internals,
 * crypto) overlaps the read, the parse and the checks here instead of following them.
 */
export const PRESTART_MIN_BYTES = 128 * 1024

/** A worker started ahead, waiting for the store's text; hand it to verifyAside, or cancel it. */
export interface PrestartedVerifier {
  readonly worker: Worker
  cancel: () => void
}

// Unref'd: a worker waiting for a text that never comes (a start that failed first) must not keep the process alive.
function newWorker (): Worker {
  const worker = new Worker(new URL('./verify-worker.js', import.meta.url))
  worker.unref()
  return worker
}

/** Start the worker now; null when it cannot be started (verifyAside then starts one, or verifies here). */
export function prestartVerifier (): PrestartedVerifier | null {
  let worker: Worker
  try {
    worker = newWorker()
  } catch {
    return null
  }
  // Until verifyAside listens, an error is only this: it must not be an unhandled 'error' event.
  const ignore = (): void => {}
  worker.on('error', ignore)
  return { worker, cancel: () => { void worker.terminate() } }
}

/**
 * Start verifying `data` (parsed from `text`) under `key`: resolves when every value decrypts, rejects with
 * verifyStore's error otherwise. A wrong key id throws at once. Should the worker fail to run (a missing file,
 * no memory), the values are verified on this thread instead: the answer never depends on the worker.
 * `early`: a worker prestartVerifier started; used when the store is big enough, cancelled otherwise.
 */
export function verifyAside (data: StoreData, text: string, key: Buffer, file: string, early: PrestartedVerifier | null = null): Promise<void> {
  try {
    verifyKeyId(data, key, file)
  } catch (err) {
    early?.cancel()
    throw err
  }
  if (data.secrets.length < VERIFY_ASIDE_MIN) {
    early?.cancel()
    verifyStore(data, key, file)
    return Promise.resolve()
  }
  return new Promise<number | null>(resolve => {
    let worker: Worker
    // A copy of its own: a Buffer may be a view of a shared pool, which the clone would carry over whole.
    const keyCopy = Uint8Array.from(key)
    try {
      worker = early?.worker ?? newWorker()
      worker.once('message', (bad: unknown) => {
        resolve(typeof bad === 'number' ? bad : null)
        void worker.terminate()
      })
      worker.once('error', () => { resolve(null) })
      worker.once('exit', () => { resolve(null) })
      worker.postMessage({ text, key: keyCopy })
    } catch {
      early?.cancel()
      resolve(null)
      return
    } finally {
      keyCopy.fill(0)
    }
  }).then(bad => {
    // The failing record's error is made here, as verifyStore makes it; any doubt is settled by verifying here.
    if (bad !== null && bad >= 0 && bad < data.secrets.length) verifySecret(data.secrets[bad]!, key, file)
    if (bad !== -1) verifyStore(data, key, file)
  })
}
