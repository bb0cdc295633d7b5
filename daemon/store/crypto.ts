// Encryption of secret values at rest: AES-256-GCM, one value at a time.
// Each write draws a fresh random 96-bit nonce (GCM's safe bound of 2^32 encryptions per key is far beyond what
// a secrets store does between rotations). The scope and name go in as associated data, so a ciphertext copied
// onto another entry fails authentication instead of handing one user's value to another.
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'
import { nfsError } from '../errors.js'
import { SecretValue } from '../secret-value.js'
import type { Scope } from '../types.js'

export const KEY_BYTES = 32
export const NONCE_BYTES = 12
export const TAG_BYTES = 16
const AAD_PREFIX = 'nf-secretsd:v1'

/** One sealed value as it sits in store.json; base64 fields. */
export interface Sealed {
  nonce: string
  data: string
  tag: string
}

export function associatedData (scope: string, name: string): Buffer {
  return Buffer.from(`${AAD_PREFIX}\0${scope}\0${name}`, 'utf8')
}

function checkKey (key: Buffer): void {
  if (!Buffer.isBuffer(key) || key.length !== KEY_BYTES) {
    throw nfsError('NFS_ERR_KEY', ['(in memory)', `the key must be ${KEY_BYTES} bytes`])
  }
}

export function seal (key: Buffer, scope: Scope, name: string, value: SecretValue): Sealed {
  checkKey(key)
  const nonce = randomBytes(NONCE_BYTES)
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(associatedData(scope, name))
  const data = Buffer.concat([cipher.update(value.reveal(), 'utf8'), cipher.final()])
  return { nonce: nonce.toString('base64'), data: data.toString('base64'), tag: cipher.getAuthTag().toString('base64') }
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/

/**
 * How many bytes Buffer.from(s, 'base64') gives for a string BASE64 accepts: 3 for every 4 characters before the
 * padding, rounded down. Computed rather than decoded: isSealed runs for every value at every start (issue 18: the
 * two decodes were most of a 5,000-secret store's checks). test/store/crypto.test.ts holds it to Buffer.from.
 */
export function base64Length (s: string): number {
  let n = s.length
  if (n > 0 && s.charCodeAt(n - 1) === 0x3d) n--
  if (n > 0 && s.charCodeAt(n - 1) === 0x3d) n--
  return Math.floor(n * 3 / 4)
}

/** True when `sealed` has the shape seal() produces (right field types and nonce/tag lengths). */
export function isSealed (sealed: unknown): sealed is Sealed {
  if (typeof sealed !== 'object' || sealed === null) return false
  const s = sealed as Record<string, unknown>
  if (typeof s.nonce !== 'string' || typeof s.data !== 'string' || typeof s.tag !== 'string') return false
  if (!BASE64.test(s.nonce) || !BASE64.test(s.data) || !BASE64.test(s.tag)) return false
  return base64Length(s.nonce) === NONCE_BYTES && base64Length(s.tag) === TAG_BYTES
}

/**
 * Decrypt one value. Any authentication failure (wrong key, altered bytes, a ciphertext moved to another
 * scope or name) is NFS_ERR_KEY naming the entry, never the value.
 */
export function open (key: Buffer, scope: Scope, name: string, sealed: Sealed): SecretValue {
  checkKey(key)
  const entry = `${scope}/${name}`
  if (!isSealed(sealed)) throw nfsError('NFS_ERR_KEY', [entry, 'the sealed value is malformed'])
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(sealed.nonce, 'base64'), { authTagLength: TAG_BYTES })
    decipher.setAAD(associatedData(scope, name))
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'))
    const plain = Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()])
    return new SecretValue(plain.toString('utf8'))
  } catch (err) {
    throw nfsError('NFS_ERR_KEY', [entry, 'authentication failed: wrong key, or the value was altered or moved'], err)
  }
}

/**
 * A short public name for a key: 16 hex digits of a domain-separated SHA-256. It tells keys apart (the store
 * records which key wrote it) and, the key being 256 random bits, says nothing useful about it.
 */
export function keyId (key: Buffer): string {
  return createHash('sha256').update('nf-secretsd key id\0').update(key).digest('hex').slice(0, 16)
}

export function generateKey (): Buffer {
  return randomBytes(KEY_BYTES)
}
