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
  /** cluster mode: the node it was added on (watch roots are shared there) */
  node?: string
}

export interface WatchFileData {
  format: 1
  watches: StoredWatch[]
}

/** A shared root added or removed (cluster mode: seen in etcd's feed, every node's change, this node's included). */
export interface RootChange {
  op: 'added' | 'removed'
  watch: StoredWatch
  /** the etcd revision of the change (dedupe by root and revision) */
  revision: number
}

/** Why a node may not poll a root now. `unsafe`: its path is not the dir that was added (given up at once). */
export interface RootRefusal { reason: string, unsafe: boolean }
export type RootCheck = (w: StoredWatch) => Promise<RootRefusal | null>

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

/**
 * The watch roots as the watch service takes them: the API's roots (a store) and which of all the roots this node
 * walks and polls. On one node every root is its own (localWatchRoots); in a cluster the API's roots are shared and
 * one node polls each (cluster/watch-roots.ts).
 */
export interface WatchRoots extends WatchRootStore {
  /** this node's name where roots are shared between nodes; null on one node (then nothing says who polls) */
  readonly node: string | null
  /** may this node walk and poll `root` now? (a root no other node shares: yes) */
  mine: (root: string) => boolean
  /** the node that polls a shared root now (null: none does) */
  pollerOf: (root: string) => string | null
  /**
   * Taken over from a poller that is gone: the time (ms) from which a history written counts as new in the first
   * walk (Nextflow starts nobody polled meanwhile still become auto-runs). Undefined: now, as at a daemon's start.
   */
  seedsSince: (root: string) => number | undefined
  /** told when roots come or go on other nodes, or who polls one changes */
  onChange: (listener: () => void) => () => void
  /**
   * How this node judges a shared root before it claims it and while it polls it (the watch service's: the checks
   * `watch add` made, watch/root-check.ts). A cluster node claims nothing until it is set. One node: not used.
   */
  setCheck: (check: RootCheck) => void
}

/** One node: its watches.json, and every root is its own. */
export function localWatchRoots (store: WatchRootStore): WatchRoots {
  return {
    node: null,
    all: () => store.all(),
    add: async (w, maxPerUid) => await store.add(w, maxPerUid),
    remove: async (root) => await store.remove(root),
    mine: () => true,
    pollerOf: () => null,
    seedsSince: () => undefined,
    onChange: () => () => {},
    setCheck: () => {}
  }
}

/** Is this what watches.json holds (format 1, each root with its path, depth and owner)? Pure. */
export function validWatchFile (raw: unknown): raw is WatchFileData {
  const d = raw as Partial<WatchFileData> | null
  return d !== null && typeof d === 'object' && d.format === 1 && Array.isArray(d.watches) &&
    d.watches.every(w => typeof w?.root === 'string' && typeof w.depth === 'number' && typeof w.uid === 'number')
}

export async function openWatchRootStore (path: string): Promise<WatchRootStore> {
  const file = new AtomicJsonFile<WatchFileData>(path, { mode: 0o600 })
  const raw = await file.read()
  if (raw !== null && !validWatchFile(raw)) throw nfsError('NFS_ERR_STORE_UNREADABLE', [path, 'not a watch list of format 1'])
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
