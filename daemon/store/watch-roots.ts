// watches.json: the watch roots added through the API, kept across restarts (config roots live in the config file).
// Written atomically (temp, fsync, rename), 0600, like every file of the state dir; each record carries a version.
import { nfsError } from '../errors.js'
import { AtomicJsonFile } from './atomic-file.js'

export interface StoredWatch {
  root: string
  depth: number
  workspace: string | null
  targets: string[]
  poll: boolean
  intervalMs: number
  /** who added it, by uid (and name, for listing) */
  uid: number
  user: string
  createdAt: string
  version: number
}

interface WatchFileData {
  format: 1
  watches: StoredWatch[]
}

export interface WatchRootStore {
  all (): readonly StoredWatch[]
  /**
   * NFS_ERR_WATCH_EXISTS when the root is already there; NFS_ERR_LIMIT when `maxPerUid` is given and the uid holds
   * that many already (checked in the same step as the write, so two adds at once cannot both pass).
   */
  add (w: Omit<StoredWatch, 'version'>, maxPerUid?: number): Promise<StoredWatch>
  /** false when there was none */
  remove (root: string): Promise<boolean>
}

function valid (raw: unknown): raw is WatchFileData {
  const d = raw as Partial<WatchFileData> | null
  return d !== null && typeof d === 'object' && d.format === 1 && Array.isArray(d.watches) &&
    d.watches.every(w => typeof w?.root === 'string' && typeof w.depth === 'number' && typeof w.uid === 'number')
}

export async function openWatchRootStore (path: string): Promise<WatchRootStore> {
  const file = new AtomicJsonFile<WatchFileData>(path, { mode: 0o600 })
  const raw = await file.read()
  if (raw !== null && !valid(raw)) throw nfsError('NFS_ERR_STORE_UNREADABLE', [path, 'not a watch list of format 1'])
  let watches: StoredWatch[] = raw?.watches ?? []
  // One change at a time; memory follows the disk only after the write succeeded.
  let queue: Promise<unknown> = Promise.resolve()
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn, fn)
    queue = next.catch(() => {})
    return next
  }
  return {
    all: () => watches,
    add: async (w, maxPerUid) => await serial(async () => {
      if (watches.some(x => x.root === w.root)) throw nfsError('NFS_ERR_WATCH_EXISTS', [w.root])
      if (maxPerUid !== undefined && watches.filter(x => x.uid === w.uid).length >= maxPerUid) {
        throw nfsError('NFS_ERR_LIMIT', [`limits.watchRootsPerUser (${maxPerUid}): ${w.user} holds ${maxPerUid} watch roots`])
      }
      const rec: StoredWatch = { ...w, version: 1 }
      const next = [...watches, rec]
      await file.write({ format: 1, watches: next })
      watches = next
      return rec
    }),
    remove: async (root) => await serial(async () => {
      const next = watches.filter(x => x.root !== root)
      if (next.length === watches.length) return false
      await file.write({ format: 1, watches: next })
      watches = next
      return true
    })
  }
}
