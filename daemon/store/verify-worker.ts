// Worker thread entry (started by store/verify-aside.ts, possibly before the store is read): waits for a store.json's
// text and the key, decrypts every sealed value once, dropping the plaintext, and posts the index of the first that
// fails, or -1 when all of them verify. It only answers a question: the error, its message and the exit 78 are made
// by the daemon's thread (verifySecret).
import { parentPort } from 'node:worker_threads'
import { open } from './crypto.js'
import type { StoreData } from './store-format.js'

parentPort?.once('message', (msg: { text: string, key: Uint8Array }) => {
  const secrets = (JSON.parse(msg.text) as StoreData).secrets
  const k = Buffer.from(msg.key.buffer, msg.key.byteOffset, msg.key.byteLength)
  let bad = -1
  for (let i = 0; i < secrets.length; i++) {
    const s = secrets[i]!
    try {
      open(k, s.scope, s.name, s.sealed)
    } catch {
      bad = i
      break
    }
  }
  k.fill(0)
  // The daemon's thread ends this worker once it has the answer.
  parentPort?.postMessage(bad)
})
