// Where each secret sits in the file store's committed array, by entryKey (issue 18): an arm's 20 lookups and its
// markUsed each scanned the whole store (1,000 records: 0.4 ms of the arm's CPU in a profile). One per store, built
// once per array, the first time a lookup needs it. Every change copies the array (casSecret, markUsed), so a new
// array gets a new index; markUsed's copy keeps every position and hands it on (`carry`). A position is answered only
// for the record that has its key: an array changed in place would make a lookup slow, never wrong.
import { entryKey, type SecretRecord } from './store-format.js'

export class SecretPositions {
  #of: readonly SecretRecord[] | null = null
  #at: ReadonlyMap<string, number> = new Map()

  /** the position of scope/name in `secrets`, or undefined */
  indexOf (secrets: readonly SecretRecord[], scope: string, name: string): number | undefined {
    if (this.#of !== secrets) this.#build(secrets)
    const i = this.#at.get(entryKey(scope, name))
    if (i === undefined) return undefined
    const r = secrets[i]!
    if (r.scope === scope && r.name === name) return i
    this.#build(secrets)
    return this.#at.get(entryKey(scope, name))
  }

  /** `copy` holds every record of the array last indexed at the same position (markUsed's copy). */
  carry (from: readonly SecretRecord[], copy: readonly SecretRecord[]): void {
    if (this.#of === from) this.#of = copy
  }

  #build (secrets: readonly SecretRecord[]): void {
    const at = new Map<string, number>()
    for (let i = 0; i < secrets.length; i++) at.set(entryKey(secrets[i]!.scope, secrets[i]!.name), i)
    this.#of = secrets
    this.#at = at
  }
}
