// Worker thread entry (started by store/verify-aside.ts): decrypt every sealed value of a store.json's text once,
// dropping the plaintext, and post the index of the first that fails, or -1 when all of them verify. It only
// answers a question: the error, its message and the exit 78 are made by the daemon's thread (verifySecret).
import { parentPort, workerData } from 'node:worker_threads'
import { open } from './crypto.js'
import type { StoreData } from './store-format.js'

const { text, key } = workerData as { text: string, key: Uint8Array }
const secrets = (JSON.parse(text) as StoreData).secrets
const k = Buffer.from(key.buffer, key.byteOffset, key.byteLength)
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
parentPort?.postMessage(bad)
