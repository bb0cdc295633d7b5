// Run identities: a 14-character runId of [0-9A-Za-z] (about 83 bits) and a session UUID for NXF_UUID.
import { randomBytes, randomUUID } from 'node:crypto'

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
export const RUN_ID_RE = /^[0-9A-Za-z]{14}$/

export function newRunId (): string {
  let out = ''
  while (out.length < 14) {
    for (const b of randomBytes(16)) {
      // Rejection sampling keeps every character equally likely (248 = 4 * 62).
      if (b < 248 && out.length < 14) out += ALPHABET[b % 62]
    }
  }
  return out
}

export function newSessionId (): string {
  return randomUUID()
}
