// The keys of the shared watch roots (CLUSTER.md "Keys") and what they say, pure: watches/<hash(root)> holds a root
// as the API added it (no lease), wown/<hash(root)> the name of the node that polls it (on that node's lease). Read by
// watch-roots.ts, which claims, polls and gives up roots; kept apart so the records' shape and the feed's meaning
// are read in one place.
import { createHash } from 'node:crypto'
import { resolve } from 'node:path'
import type { RootChange, StoredWatch } from '../store/watch-roots.js'

export const WATCHES = 'watches/'
export const WOWN = 'wown/'

/** The key part of a root: a stable hash of its normalised path (paths may be long and hold any byte). Pure. */
export function rootHash (root: string): string {
  return createHash('sha256').update(resolve(root)).digest('hex')
}

/** A watches/ value as stored; null for one that is not ours (written by hand): not a root a node can watch. Pure. */
export function parseWatch (value: string | null): StoredWatch | null {
  if (value === null) return null
  let w: Partial<StoredWatch> | null = null
  try { w = JSON.parse(value) as Partial<StoredWatch> } catch {}
  if (w === null || typeof w !== 'object' || typeof w.root !== 'string' || typeof w.depth !== 'number' || typeof w.uid !== 'number' || typeof w.user !== 'string') return null
  return w as StoredWatch
}

/**
 * What a change of the feed says to every node's events: a root added (a watches/ key created) or removed (one
 * deleted); null for anything else. A put over a root already there is not an add (a root is added create-only; a put
 * by hand changes nothing here). Pure.
 */
export function rootChange (key: string, op: 'put' | 'delete', value: string | null, previous: string | null, revision: number): RootChange | null {
  if (!key.startsWith(WATCHES)) return null
  if (op === 'put' && previous !== null) return null
  const w = parseWatch(op === 'put' ? value : previous)
  return w === null ? null : { op: op === 'put' ? 'added' : 'removed', watch: w, revision }
}
