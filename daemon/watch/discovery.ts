// How the watcher finds a group's launch dirs: the walk of a root's tree (walk.ts) turned into watches, a `.nextflow`
// that appears in a watched dir, a history that appears in a watched `.nextflow`, and the first read of each launch
// dir. The order matters: a dir is watched before it is first read, and an event that comes during that first read
// marks the dir (`opening` -> true) for a read right after, so nothing written after the watch is missed.
// The group's maps are the watcher's; this file only adds to them. Watching and events stay in watcher.ts.
import { join } from 'node:path'
import type { Logger } from '../logger.js'
import { SHARD_PATHS } from './chokidar-shards.js'
import { LaunchDir, type DirOpener } from './launch-dir.js'
import type { ReadWhat } from './read-scheduler.js'
import { CACHE_DIR, HISTORY } from '../nextflow/file-names.js'
import { isPlainFile, walkTree, type KeptDir, type TreeDir, type WalkFs, type WalkOptions } from './walk.js'

/** The part of a watch group that discovery reads and fills. */
export interface DiscoveryGroup {
  readonly key: string
  readonly maxDepth: number
  /** tree dirs (level >= 0), and launch dirs and `.nextflow` dirs watched as such (-1) */
  readonly dirs: Map<string, number>
  readonly launch: Map<string, LaunchDir>
  /** launch dirs whose first read is in flight -> an event came meanwhile (read again once it is done) */
  readonly opening: Map<string, boolean>
  readonly reads: { schedule: (dir: string, what: ReadWhat) => void }
  /** a history changed after this (ms) was written while the daemon watched: not a seed */
  readonly walkStartedAt: number
  /** how the group reaches its dirs: from its root's fd (held-root.ts), or by path (the launch dirs of runs) */
  readonly fs: WalkFs
  readonly openDir: DirOpener
}

export interface DiscoveryHost<G extends DiscoveryGroup> {
  log: Logger
  /** the group is still watched (not removed, watcher not stopped) */
  live: (g: G) => boolean
  /** watch `paths` in the group; resolves once their watches are set; `given`: fds of some, the caller's to close */
  watch: (g: G, paths: string[], given?: ReadonlyMap<string, number>) => Promise<void>
  /** `dir` is now one of the group's launch dirs */
  onFound: (g: G, dir: string) => void
  /** how far a walk in the group may go now (the owner's dir budget) and whose dirs it enters */
  walkOptions: (g: G) => WalkOptions
  /** a walk stopped at its limit */
  onTruncated: (g: G, dirs: number) => void
}

/**
 * The instant a root's walk starts from, for telling seeds from new writes. File times come from the kernel's coarse
 * clock (a tick behind) or a server's (NFS, whole seconds): a margin, so that a write just after `now` is never taken
 * for a seed. A start just before it counts as new: harmless. Pure.
 */
export function seedCutoff (now: number): number {
  return now - 2000
}

/** The walked dirs the group does not know yet, in walk order. Pure. */
export function unknownDirs (walked: TreeDir[], known: ReadonlyMap<string, number>): TreeDir[] {
  return walked.filter(d => !known.has(d.path))
}

/**
 * After a launch dir's first read: is a full read due? A dir found while watched is new (read it all); a seed is
 * read again only if something was written since the walk began or during the first read. Pure.
 */
export function readAfterOpen (seed: boolean, dirty: boolean, changedSinceSeed: boolean): boolean {
  return !seed || dirty || changedSinceSeed
}

/** Walks of dirs that appeared together, at once (unbudgeted groups), and first reads of launch dirs in flight. */
const WALK_FANOUT = 32
const READ_FANOUT = 32
/**
 * Launch dirs a batch of walks leaves open for their watches (two fds each, the dir and its `.nextflow`): a batch is
 * watched before the next is walked, so this bounds what discovery holds at once.
 */
const KEEP_PER_BATCH = WALK_FANOUT

export class LaunchDirDiscovery<G extends DiscoveryGroup> {
  readonly #h: DiscoveryHost<G>

  constructor (host: DiscoveryHost<G>) {
    this.#h = host
  }

  /** Walk `start` (at `level`) down to the group's depth, watch what is new and read the launch dirs in it. */
  async addTree (g: G, start: string, level: number, seed: boolean): Promise<{ launchDirs: number, dirs: number }> {
    return await this.addTrees(g, [{ path: start, level }], seed)
  }

  /**
   * addTree for several starts at once (dirs that appeared together: a burst of `mkdir`s or a `mv` of many runs into
   * a root): all that is new is watched in shards of SHARD_PATHS, not in one shard a start. Under a dir budget the
   * starts are walked one after the other, each charged (its dirs and their `.nextflow`) before the next one asks how
   * far it may go, as one addTree after another was; without one, WALK_FANOUT at a time.
   */
  async addTrees (g: G, starts: readonly TreeDir[], seed: boolean): Promise<{ launchDirs: number, dirs: number }> {
    let launchDirs = 0
    let dirs = 0
    const todo = starts.filter(s => !g.dirs.has(s.path))
    // Dirs found while watched are watched batch by batch, each batch before the next is walked: a leaf launch dir is
    // then watched through the fds its walk opened (KeptDir: no second open of it or its `.nextflow`, and its owner
    // read on that fd) without holding more than KEEP_PER_BATCH of them. A seed walk (a root at start) keeps none: its
    // dirs are read as seeds, through their own opens.
    let fresh: string[] = []
    let cacheDirs = new Set<string>()
    let histories = new Set<string>()
    for (let i = 0; i < todo.length;) {
      if (!this.#h.live(g)) return { launchDirs: 0, dirs: 0 }
      const opts = this.#h.walkOptions(g)
      // the `.nextflow` dirs of this batch's walks count against the budget before addLaunchDirs watches them
      if (opts.limit !== undefined) opts.limit = Math.max(0, opts.limit - [...cacheDirs].filter(d => !g.dirs.has(join(d, CACHE_DIR))).length)
      if (!seed) opts.keep = { left: KEEP_PER_BATCH }
      const chunk = todo.slice(i, i + (opts.limit === undefined ? WALK_FANOUT : 1))
      i += chunk.length
      const walked = await Promise.all(chunk.map(async s => await walkTree(s.path, s.level, g.maxDepth, g.fs, opts)))
      const kept = new Map<string, KeptDir>()
      for (const found of walked) for (const k of found.kept) kept.set(k.path, k)
      try {
        if (!this.#h.live(g)) return { launchDirs: 0, dirs: 0 }
        for (const found of walked) {
          if (found.truncated) this.#h.onTruncated(g, found.dirs.length)
          // Every dir is known before any watch is set, so chokidar's initial addDir of a known dir is not a new tree.
          for (const d of unknownDirs(found.dirs, g.dirs)) {
            g.dirs.set(d.path, d.level)
            fresh.push(d.path)
          }
          for (const c of found.cacheDirs) cacheDirs.add(c)
          for (const l of found.launchDirs) histories.add(l)
          launchDirs += found.launchDirs.length
          dirs += found.dirs.length
        }
        // A seed walk's batches go to their watches together, as before (nothing is held between them).
        if (seed && i < todo.length) continue
        await this.addLaunchDirs(g, fresh, seed, cacheDirs, histories, kept)
        fresh = []
        cacheDirs = new Set()
        histories = new Set()
      } finally {
        await Promise.all([...kept.values()].map(async k => await Promise.all([k.dir.close(), k.cache.close()])))
      }
    }
    return { launchDirs, dirs }
  }

  /**
   * Watch `dirs` (and the `.nextflow` of each that has one) shard by shard; once a shard's watches are set, read the
   * launch dirs among them. `seed`: their history predates the watch (no starts from it). `withCache`: the dirs known
   * to hold a `.nextflow` (from a walk); without it each dir is looked at. `withHistory`: those whose history the walk
   * just saw as a plain file (through the dir's fd): their first read does not look again.
   */
  async addLaunchDirs (g: G, dirs: string[], seed: boolean, withCache?: Set<string>, withHistory?: Set<string>, kept?: ReadonlyMap<string, KeptDir>): Promise<void> {
    const reading = new Set<Promise<void>>()
    for (let i = 0; i < dirs.length && this.#h.live(g); i += SHARD_PATHS / 2) {
      const chunk = dirs.slice(i, i + SHARD_PATHS / 2)
      const caches: string[] = []
      // the `.nextflow` paths as g.dirs holds them: the shard keeps the same strings, not a second copy of each
      const cachePaths: string[] = []
      for (const dir of chunk) {
        if (withCache !== undefined ? !withCache.has(dir) : !(await this.#isDir(g, join(dir, CACHE_DIR)))) continue
        const cache = join(dir, CACHE_DIR)
        if (g.dirs.has(cache)) continue
        g.dirs.set(cache, -1)
        caches.push(dir)
        cachePaths.push(cache)
        if (!g.launch.has(dir)) g.opening.set(dir, g.opening.get(dir) ?? false)
      }
      // the fds a walk kept of some of these dirs: their watches are set through them (the walk's own inodes)
      let given: Map<string, number> | undefined
      for (const dir of chunk) {
        const k = kept?.get(dir)
        if (k?.dir.fd === undefined || k.cache.fd === undefined) continue
        given ??= new Map()
        given.set(dir, k.dir.fd)
        given.set(join(dir, CACHE_DIR), k.cache.fd)
      }
      await this.#h.watch(g, [...chunk, ...cachePaths], given)
      // The next shard is set up while these first reads go on, READ_FANOUT at most in flight: each opens files, and
      // a walk can bring thousands at once.
      for (const dir of caches) {
        while (reading.size >= READ_FANOUT) await Promise.race(reading)
        const p: Promise<void> = this.#open(g, dir, seed, withHistory?.has(dir) === true, kept?.get(dir)?.uid).catch((err: unknown) => { this.#h.log.warn({ dir, err }, 'reading a launch dir failed') }).finally(() => { reading.delete(p) })
        reading.add(p)
      }
    }
    await Promise.all(reading)
  }

  /** `<dir>/.nextflow` appeared while watched: watch it, then take `dir` as a launch dir once history is there. */
  async watchCache (g: G, dir: string): Promise<void> {
    const cache = join(dir, CACHE_DIR)
    if (g.dirs.has(cache) || !(await this.#isDir(g, cache))) return
    g.dirs.set(cache, -1)
    g.opening.set(dir, g.opening.get(dir) ?? false)
    await this.#h.watch(g, [cache])
    await this.#open(g, dir, false)
  }

  /** A dir that became a launch dir while watched (its history appeared). */
  async found (g: G, dir: string): Promise<void> {
    if (g.launch.has(dir) || g.opening.has(dir) || !this.#h.live(g)) return
    g.opening.set(dir, false)
    await this.#open(g, dir, false)
  }

  /**
   * The first read of a launch dir whose `opening` mark is set (by the caller, before its watch was). `seen`: the walk
   * saw its history a moment ago (the read itself goes through the dir's fd and takes the file as it is then). `uid`:
   * its owner, as the walk read it on the fd its watches were set through (KeptDir).
   */
  async #open (g: G, dir: string, seed: boolean, seen = false, uid?: number): Promise<void> {
    let ld: LaunchDir | null = null
    try {
      if (!this.#h.live(g) || g.launch.has(dir)) ld = null
      // its owner read by the walk on the fd its watches were set through: a new dir has nothing to read yet
      else if (uid !== undefined && !seed && seen) ld = LaunchDir.found(dir, uid, g.openDir)
      else if (seen || await isPlainFile(g.fs, join(dir, CACHE_DIR, HISTORY))) ld = await LaunchDir.open(dir, seed, g.walkStartedAt, g.openDir)
    } finally {
      const dirty = g.opening.get(dir) ?? false
      g.opening.delete(dir)
      if (ld !== null && !g.launch.has(dir) && this.#h.live(g)) {
        g.launch.set(dir, ld)
        this.#h.onFound(g, dir)
        if (readAfterOpen(seed, dirty, ld.changedSinceSeed)) g.reads.schedule(dir, { history: true, log: true })
      } else if (ld === null && dirty && this.#h.live(g)) {
        // history appeared while we looked: it was written after the watch was set, so it is read from scratch
        void this.found(g, dir)
      }
    }
  }

  async #isDir (g: G, path: string): Promise<boolean> {
    try {
      return (await g.fs.lstat(path)).isDirectory()
    } catch {
      return false
    }
  }
}
