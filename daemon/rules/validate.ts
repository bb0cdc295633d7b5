// Name and value rules (SPEC section 3), pure. Nextflow hands values to grid tasks as `export NAME="value"` with only
// `$` escaped, so characters that break or execute inside double quotes are refused, not escaped.
import { nfsError } from '../errors.js'

// Nextflow's SecretsHelper.NAME_REGEX, plus its `__` prefix rule and our length bound.
const NAME_RE = /^[A-Za-z_](?:[0-9A-Za-z]+|(_)(?!\1)){1,49}$/
const WORKSPACE_RE = /^[a-z0-9][a-z0-9_-]{0,63}$/

export const MAX_VALUE_BYTES = 65_536

export function isValidSecretName (name: unknown): name is string {
  return typeof name === 'string' && name.length >= 2 && name.length <= 100 && !name.startsWith('__') && NAME_RE.test(name)
}

export function checkSecretName (name: unknown): string {
  if (!isValidSecretName(name)) throw nfsError('NFS_ERR_INVALID_NAME', [JSON.stringify(String(name).slice(0, 120))])
  return name
}

export function checkWorkspaceName (name: unknown): string {
  if (typeof name !== 'string' || !WORKSPACE_RE.test(name)) throw nfsError('NFS_ERR_INVALID_WORKSPACE', [JSON.stringify(String(name).slice(0, 80))])
  return name
}

const FORBIDDEN: Array<[string, string]> = [
  ['\n', 'a newline'],
  ['\r', 'a carriage return'],
  ['"', 'a double quote (")'],
  ['`', 'a backtick (`)'],
  ['\\', 'a backslash (\\)']
]

/**
 * Check a value without ever putting it in the error: the message names the rule and the character class only.
 * Returns the value's byte length.
 */
export function checkSecretValue (value: unknown): number {
  if (typeof value !== 'string') throw nfsError('NFS_ERR_BAD_REQUEST', ['value must be a string'])
  const bytes = Buffer.byteLength(value, 'utf8')
  if (bytes < 1 || bytes > MAX_VALUE_BYTES) throw nfsError('NFS_ERR_VALUE_SIZE', [bytes])
  // A lone surrogate cannot be encoded as UTF-8: it would be silently replaced on the way to disk.
  if (value.includes('\0') || !value.isWellFormed()) throw nfsError('NFS_ERR_VALUE_ENCODING')
  for (const [ch, label] of FORBIDDEN) {
    if (value.includes(ch)) throw nfsError('NFS_ERR_VALUE_CHARACTER', [label])
  }
  return bytes
}
