// The seal over store.json (issue 18): an HMAC-SHA256 of the whole file under a key derived from the master key
// (HKDF, a label of its own), written by the same atomic write as the store. A file whose seal matches is byte for
// byte what a holder of the key wrote, and everything that writes the store writes only values it sealed itself or
// verified first (the store after its start's checks, rotate-key after verifyStore): so the start may skip the
// per-value decryption of such a file. A missing or wrong seal proves nothing either way and the start verifies
// every value as before. Neither is freshness: an older file sealed under the same key is as good as an older file
// whose values verify, which was so before the seal too (docs/security.md).
//
// Where it lives: first member of the store's JSON object, `{"seal":"<64 hex>",...}`, over the bytes after it. The
// format stays 1: an older daemon reads the member as an unknown field, ignores it, and writes it back unchanged
// with its own changes, so the seal no longer matches and the next newer start verifies every value.
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto'

const SEAL_INFO = 'nf-secretsd store seal v1'
const HEAD = '{"seal":"'
const HEX_LEN = 64
const TAIL = '",'
const PREFIX_LEN = HEAD.length + HEX_LEN + TAIL.length
const HEX = /^[0-9a-f]{64}$/

/** The seal's own key: HKDF-SHA256 of the master key, so an HMAC never shares a key with the values' AES-GCM. */
export function sealKey (key: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), SEAL_INFO, 32))
}

function mac (k: Buffer, parts: Array<string | Buffer>): Buffer {
  const h = createHmac('sha256', k)
  for (const p of parts) h.update(p)
  return h.digest()
}

/**
 * store.json's bytes for `data` (any `seal` member of it dropped), sealed under `key`'s seal key: the seal covers
 * exactly the JSON of the rest plus the final newline, as sealedBody reads it back.
 */
export function sealedStoreText (data: object, key: Buffer): string {
  const { seal: _old, ...rest } = data as Record<string, unknown>
  const body = JSON.stringify(rest)
  // An object with no member cannot take one in front: written unsealed (the store always has members).
  if (body.length <= 2) return body + '\n'
  const hex = mac(sealKey(key), [body, '\n']).toString('hex')
  return `${HEAD}${hex}${TAIL}${body.slice(1)}\n`
}

/** True when `bytes` (store.json as read) carry a seal that matches under `key`; false when absent or wrong. */
export function sealMatches (bytes: Buffer, key: Buffer): boolean {
  if (bytes.length <= PREFIX_LEN || bytes.toString('latin1', 0, HEAD.length) !== HEAD) return false
  const hex = bytes.toString('latin1', HEAD.length, HEAD.length + HEX_LEN)
  if (!HEX.test(hex) || bytes.toString('latin1', HEAD.length + HEX_LEN, PREFIX_LEN) !== TAIL) return false
  const want = mac(sealKey(key), ['{', bytes.subarray(PREFIX_LEN)])
  return timingSafeEqual(want, Buffer.from(hex, 'hex'))
}
