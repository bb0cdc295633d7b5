// One watch group of the watcher (watcher.ts): a root's tree, or the launch dirs of runs. What it watches (its dirs,
// launch dirs and shards), how it reaches them (from its root's held fd, held-root.ts, or by path for runs' dirs), and
// the options it was given (polling, a user's dir budget, the guard of an API root).
import { basename, join } from 'node:path'
import { CACHE_DIR } from '../nextflow/file-names.js'
import type { HeldRoot } from './held-root.js'
import type { DirOpener, LaunchDir } from './launch-dir.js'
import { openDir } from '../os/read-owned.js'
import type { ReadScheduler } from './read-scheduler.js'
import type { Shard } from './chokidar-shards.js'
import type { WalkFs } from './walk.js'

export interface GroupOptions {
  poll: boolean
  intervalMs: number
  /**
   * Groups with the same budget key share `limit` watched dirs (a user's roots together: limits.watchedDirsPerUser);
   * `owner`: walks enter only that uid's dirs. Absent: an admin's group, limited only by the walk's own bound.
   */
  budget?: { key: string, limit: number, owner: number }
  /**
   * Asked before anything new under the root is walked (a dir made, a history appeared): false when the root's path
   * is not the dir that was added any more (a symlink swapped into it). Nothing is reached through that path (the
   * group holds its root's fd, held-root.ts), but chokidar's polling stats it: a root whose path leads elsewhere stops.
   * Callers at one time share one answer (one in flight per group, reused within the tick it came in).
   */
  guard?: () => Promise<boolean>
}

/** A group: its dirs, its launch dirs and the chokidar shards that watch them. */
export class Group {
  readonly key: string
  opts: GroupOptions
  degraded: string | null = null
  /** a walk stopped at the dir budget: part of the tree is not watched */
  limited: string | null = null
  readonly maxDepth: number
  readonly dirs = new Map<string, number>()
  readonly launch = new Map<string, LaunchDir>()
  readonly reads: ReadScheduler
  /** launch dirs whose first read is in flight -> an event came meanwhile (read again once it is done) */
  readonly opening = new Map<string, boolean>()
  /** each holds its own paths (Shard.paths); no map of path -> shard beside them: 20,000 entries at 10,000 launch dirs */
  readonly shards = new Set<Shard>()
  /** a history changed after this (ms) was written while the daemon watched: not a seed */
  walkStartedAt = Number.POSITIVE_INFINITY
  /** dirs that appeared while an earlier batch was being added: added together once it is done */
  readonly newTrees = new Map<string, number>()
  addingTrees = false
  /** a root's group: its root held open, everything under it reached from that fd (held-root.ts) */
  held: HeldRoot | null = null
  fs: WalkFs
  openDir: DirOpener = openDir
  /** the guard's answer in flight or of this tick (GroupOptions.guard) */
  guarding: Promise<boolean> | null = null

  constructor (key: string, opts: GroupOptions, maxDepth: number, fs: WalkFs, reads: (g: Group) => ReadScheduler) {
    this.key = key
    this.opts = opts
    this.maxDepth = maxDepth
    this.fs = fs
    this.reads = reads(this)
  }

  /** Reach everything from `held`: the walk, the watches' lookups, the reads. */
  hold (held: HeldRoot, wrap: (fs: WalkFs) => WalkFs): void {
    this.held = held
    this.fs = wrap(held.fs())
    // A user's group watches and reads only that user's dirs, as its walk enters only those: the walk checked each on
    // its own fd, but by the time a watch is set or a launch dir read the name may be another user's dir (renamed in
    // by the user). A `.nextflow` is not checked, as the walk does not check it (its files are: read-owned.ts).
    const owner = this.opts.budget?.owner
    this.openDir = owner === undefined
      ? async (dir) => await held.openDir(dir)
      : async (dir) => await held.openDir(dir, basename(dir) === CACHE_DIR ? undefined : owner)
  }

  /**
   * Stop watching `path` (its shard closes with its last path) and forget it, and the launch dir it was. Rare (a dir
   * gone, a run's dir dropped), so its shard is looked for (the newest holding it).
   */
  forget (path: string): void {
    let shard: Shard | undefined
    for (const s of this.shards) if (s.paths.has(path)) shard = s
    this.dirs.delete(path)
    this.launch.delete(path)
    this.reads.forget(path)
    if (shard === undefined) return
    shard.paths.delete(path)
    if (shard.paths.size > 0) {
      shard.unwatch(path)
      return
    }
    this.shards.delete(shard)
    void shard.close()
  }

  /**
   * Forget `path` and everything watched below it (a dir gone). A dir at the depth, a `.nextflow` or a run's own
   * launch dir has nothing watched below it but its `.nextflow`: forgotten by name. A look through every watched dir
   * for each one was quadratic: an `rm -rf` of 1,000 launch dirs in a root of 3,000 held the event loop 3.8 s (a CPU
   * profile, December 4); only a tree dir above the depth is looked for that way now.
   */
  forgetTree (path: string): void {
    const level = this.dirs.get(path) ?? -1
    if (level === -1 || level >= this.maxDepth) {
      this.forget(path)
      this.forget(join(path, CACHE_DIR))
      return
    }
    for (const d of [...this.dirs.keys()]) if (d === path || d.startsWith(`${path}/`)) this.forget(d)
  }

  /**
   * The guard (GroupOptions.guard): is the root's path still the dir held? One answer in flight per group, kept for
   * the rest of the tick it came in: a burst of events (a `mv` of many runs) costs one check, not one each.
   */
  async safe (): Promise<boolean> {
    const guard = this.opts.guard
    if (guard === undefined) return true
    if (this.guarding === null) {
      const asked = guard()
      this.guarding = asked
      const drop = (): void => { setImmediate(() => { if (this.guarding === asked) this.guarding = null }) }
      asked.then(drop, drop)
    }
    return await this.guarding
  }

  async closeShards (): Promise<void> {
    const old = [...this.shards]
    this.shards.clear()
    await Promise.all(old.map(async s => await s.close()))
  }

  /** The group is no longer watched: its reads stop, its shards and its root's fd close. */
  async close (): Promise<void> {
    this.reads.stop()
    await this.closeShards()
    await this.held?.close()
  }
}
