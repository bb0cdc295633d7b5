// Read back what a test daemon put on disk: the sealed value of one secret, opened with the state dir's master.key.
// Tests use it to prove that what the CLI sent (after --base64, newline stripping) is exactly what was stored.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseKey } from '../../daemon/store/key.js'
import { open, type Sealed } from '../../daemon/store/crypto.js'
import type { Scope } from '../../daemon/types.js'

interface StoredSecret { name: string, scope: Scope, version: number, sealed: Sealed }

/** The decrypted value of scope/name in a user-mode state dir (key in <state>/master.key), or null when absent. */
export function storedValue (stateDir: string, scope: Scope, name: string, keyFile = join(stateDir, 'master.key')): string | null {
  const store = JSON.parse(readFileSync(join(stateDir, 'store.json'), 'utf8')) as { secrets: StoredSecret[] }
  const entry = store.secrets.find(s => s.scope === scope && s.name === name)
  if (entry === undefined) return null
  const key = parseKey(readFileSync(keyFile, 'utf8'), keyFile)
  return open(key, scope, name, entry.sealed).reveal()
}
