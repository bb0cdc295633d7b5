// The one chokidar wrapper (STYLE habit 8). It watches, per group (a root, or the launch dirs of runs), exactly:
// the dirs of a root's tree down to its depth (to see launch dirs appear), and in each launch dir the dir itself and
// `.nextflow/` (natively: two inotify watches a launch dir; the files are known from the dirs' events). Each watch
// looks at depth 0 and a filter hides every other name, so work/ is never listed, stat'ed inside or watched. How the
// watches are cut into shards and awaited: chokidar-shards.ts (polling, chokidar) and native-shards.ts (a plain
// fs.watch a dir, bench/README.md). A group's state and its way to its dirs (from its root's fd): watch-group.ts.
// Out come domain events: launch-dir-found, run-started, run-ended, activity, degraded. How launch dirs are found:
// discovery.ts. When a launch dir is read (leading and trailing edge, rechecks): read-scheduler.ts. stop() is awaited.
import { basename, dirname, join } from 'node:path'
import type { Logger } from '../logger.js'
import { openChokidarShard, SHARD_PATHS, watchedPaths, type ShardHost } from './chokidar-shards.js'
import { openNativeShard } from './native-shards.js'
import { LaunchDirDiscovery, seedCutoff } from './discovery.js'
import type { LaunchEvent } from './launch-dir.js'
import { openRoot, type HeldRoot } from './held-root.js'
import { Group, type GroupOptions } from './watch-group.js'
import { ReadScheduler, type ReadOutcome, type ReadWhat } from './read-scheduler.js'
import { CACHE_DIR, HISTORY, LAUNCH_FILES } from '../nextflow/file-names.js'
import { nodeWalkFs, type WalkFs } from './walk.js'
import { realTimers, type Timers } from '../os/timers.js'

export type WatcherEvent =
  | LaunchEvent
  | { type: 'launch-dir-found', group: string, launchDir: string }
  | { type: 'activity', launchDir: string }
  | { type: 'degraded', group: string, reason: string }

export interface WatcherOptions {
  logger: Logger
  /** at most one read of a launch dir per this window; the first event of a burst is read at once */
  debounceMs?: number
  /** wraps each group's fs (tests count or hold its calls); the paths it gets are the watcher's */
  wrapFs?: (fs: WalkFs) => WalkFs
  /** the read scheduling's clock and timers (tests move them by hand); the process's own when left out */
  timers?: Timers
}

export class RunDirWatcher {
  readonly #log: Logger
  readonly #debounceMs: number
  readonly #wrapFs: (fs: WalkFs) => WalkFs
  readonly #timers: Timers
  readonly #groups = new Map<string, Group>()
  readonly #listeners = new Set<(e: WatcherEvent) => void>()
  readonly #discovery: LaunchDirDiscovery<Group>
  #stopped = false

  constructor (opts: WatcherOptions) {
    this.#log = opts.logger.child({ room: 'watch' })
    this.#debounceMs = opts.debounceMs ?? 50
    this.#wrapFs = opts.wrapFs ?? (fs => fs)
    this.#timers = opts.timers ?? realTimers
    this.#discovery = new LaunchDirDiscovery<Group>({
      log: this.#log,
      live: (g) => this.#live(g),
      watch: async (g, paths, given) => { await this.#watch(g, paths, given) },
      onFound: (g, dir) => { this.#emit({ type: 'launch-dir-found', group: g.key, launchDir: dir }) },
      walkOptions: (g) => g.opts.budget === undefined ? {} : { limit: Math.max(0, g.opts.budget.limit - this.#budgetUsed(g.opts.budget.key)), owner: g.opts.budget.owner },
      onTruncated: (g, dirs) => {
        // once per group: each new dir under a full budget would say it again
        if (g.limited !== null) return
        const b = g.opts.budget
        g.limited = b === undefined ? 'the walk stopped at 200000 dirs' : `limits.watchedDirsPerUser (${b.limit}) reached: part of this root is not watched`
        this.#log.warn({ group: g.key, dirs, limit: b?.limit }, 'watch root is too large; watching part of it')
      }
    })
  }

  on (listener: (e: WatcherEvent) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  #emit (e: WatcherEvent): void {
    for (const l of this.#listeners) {
      try {
        l(e)
      } catch (err) {
        this.#log.error({ err, event: e.type }, 'watch listener failed')
      }
    }
  }

  /** Dirs watched by every group charged to `key` (tree dirs and `.nextflow` dirs, as the walk counts them). */
  #budgetUsed (key: string): number {
    let n = 0
    for (const g of this.#groups.values()) if (g.opts.budget?.key === key) n += g.dirs.size
    return n
  }

  #live (g: Group): boolean {
    return !this.#stopped && this.#groups.get(g.key) === g
  }

  #host (g: Group): ShardHost {
    return {
      poll: g.opts.poll,
      intervalMs: g.opts.intervalMs,
      maxDepth: g.maxDepth,
      dirs: g.dirs,
      fs: g.fs,
      openDir: g.openDir,
      onAll: (event, path) => { void this.#onFs(g, event, path) },
      onRaw: (file, watched) => { this.#onRaw(g, file, watched) },
      onError: (err) => { void this.#onError(g, err) }
    }
  }

  /** Hand `paths` to a new shard and wait until their watches are set; `given`: fds of some held by the caller (native). */
  async #watch (g: Group, paths: string[], given?: ReadonlyMap<string, number>): Promise<void> {
    if (paths.length === 0 || !this.#live(g)) return
    const shard = g.opts.poll ? openChokidarShard(this.#host(g), paths) : openNativeShard(this.#host(g), paths, given)
    g.shards.add(shard)
    await shard.ready
  }

  /**
   * Start watching a group: a root's tree (depth >= 0) or, with `root: null`, nothing until addLaunchDir. `seedsSince`
   * (ms): histories written from then on are read as new, not as seeds (a root taken over from a node that is gone).
   * `held`: the root as its caller opened and checked it (openRoot), handed over; without it the root is opened here
   * with no owner check, and a root that does not open is not walked (`degraded` says why).
   */
  async addGroup (key: string, opts: GroupOptions, root: { path: string, depth: number, seedsSince?: number, held?: HeldRoot } | null): Promise<{ launchDirs: number, dirs: number }> {
    if (this.#stopped || this.#groups.has(key)) {
      await root?.held?.close()
      return { launchDirs: 0, dirs: 0 }
    }
    const g = new Group(key, opts, root?.depth ?? -1, this.#wrapFs(nodeWalkFs), (gg) => new ReadScheduler({
      debounceMs: this.#debounceMs,
      timers: this.#timers,
      intervalMs: () => gg.opts.intervalMs,
      read: async (dir, what) => await this.#read(gg, dir, what),
      onError: (dir, err) => { this.#log.warn({ dir, err }, 'scanning a launch dir failed') }
    }))
    this.#groups.set(key, g)
    if (root === null) return { launchDirs: 0, dirs: 0 }
    const held = root.held ?? await openRoot(root.path, null)
    if (!('dev' in held)) {
      g.degraded = `not walked: ${held.reason}`
      return { launchDirs: 0, dirs: 0 }
    }
    if (this.#groups.get(key) !== g || this.#stopped) {
      await held.close()
      return { launchDirs: 0, dirs: 0 }
    }
    g.hold(held, this.#wrapFs)
    // The wall clock, not the timers: it is compared with the histories' mtimes.
    g.walkStartedAt = seedCutoff(Math.min(Date.now(), root.seedsSince ?? Number.POSITIVE_INFINITY))
    return await this.#discovery.addTree(g, root.path, 0, true)
  }

  async removeGroup (key: string): Promise<void> {
    const g = this.#groups.get(key)
    if (g === undefined) return
    this.#groups.delete(key)
    await g.close()
  }

  /** Watch one launch dir in a group (a run's dir outside every root). */
  async addLaunchDir (key: string, dir: string): Promise<void> {
    const g = this.#groups.get(key)
    if (g === undefined || g.dirs.has(dir)) return
    g.dirs.set(dir, -1)
    await this.#discovery.addLaunchDirs(g, [dir], true)
  }

  async removeLaunchDir (key: string, dir: string): Promise<void> {
    const g = this.#groups.get(key)
    if (g === undefined || !g.dirs.has(dir)) return
    g.forget(dir)
    g.forget(join(dir, CACHE_DIR))
  }

  /** Is `dir` a launch dir or tree dir of some group (other than those in `except`)? */
  covers (dir: string, except: string[] = []): boolean {
    for (const g of this.#groups.values()) if (!except.includes(g.key) && g.dirs.has(dir)) return true
    return false
  }

  groups (): Array<{ key: string, launchDirs: number, dirs: number, degraded: string | null, limited: string | null, poll: boolean }> {
    return [...this.#groups.values()].map(g => ({ key: g.key, launchDirs: g.launch.size, dirs: g.dirs.size, degraded: g.degraded, limited: g.limited, poll: g.opts.poll }))
  }

  /** The watched paths, per group, as the shards hold them: for tests and diagnostics. */
  watched (key: string): Record<string, string[]> {
    const g = this.#groups.get(key)
    return g === undefined ? {} : watchedPaths(g.shards)
  }

  /** A file event in a watched dir (natively, from the dirs' raw events). */
  #touch (g: Group, dir: string, what: ReadWhat): void {
    if (g.opening.has(dir)) g.opening.set(dir, true)
    else if (g.launch.has(dir)) g.reads.schedule(dir, what)
    else if (what.history) void g.safe().then(async ok => { if (ok && this.#live(g)) await this.#discovery.found(g, dir) })
  }

  #onRaw (g: Group, file: string | null, watched: string): void {
    if (!this.#live(g)) return
    if (basename(watched) === CACHE_DIR && g.dirs.has(watched)) {
      if (file === null || file === HISTORY) this.#touch(g, dirname(watched), { history: true, log: false })
    } else if (file === null || LAUNCH_FILES.has(file)) {
      if (g.launch.has(watched) || g.opening.has(watched)) this.#touch(g, watched, { history: false, log: file !== '.nextflow.pid' })
    }
  }

  async #onFs (g: Group, event: string, path: string): Promise<void> {
    if (!this.#live(g)) return
    const name = basename(path)
    const parent = dirname(path)
    try {
      if (event === 'addDir') {
        if (g.dirs.has(path)) return
        if (!await g.safe() || !this.#live(g)) return
        if (name === CACHE_DIR) await this.#discovery.watchCache(g, parent)
        // A dir made while watched is read from scratch: `mkdir p && cd p && nextflow run` must not be missed.
        else if ((g.dirs.get(parent) ?? -1) >= 0) await this.#addNewTree(g, path, (g.dirs.get(parent) ?? 0) + 1)
      } else if (event === 'unlinkDir') {
        g.forgetTree(path)
      } else if (name === HISTORY && basename(parent) === CACHE_DIR) {
        // polling mode: chokidar's file watchers (natively these come as raw events)
        this.#touch(g, dirname(parent), { history: true, log: false })
      } else if (LAUNCH_FILES.has(name) && g.launch.has(parent)) {
        this.#touch(g, parent, { history: false, log: name !== '.nextflow.pid' })
      }
    } catch (err) {
      this.#log.warn({ group: g.key, err }, 'watch event handling failed')
    }
  }

  /**
   * A dir made while watched. The first of a burst waits one turn of the event loop (the rest of that tick's events go
   * in with it); those that come while a batch is being added wait and go in together (a `mv` of 1,000 runs into a
   * root: a few shards instead of a chokidar instance each, 2.3 s -> see bench/README.md "discovery").
   */
  async #addNewTree (g: Group, path: string, level: number): Promise<void> {
    g.newTrees.set(path, level)
    if (g.addingTrees) return
    g.addingTrees = true
    try {
      await new Promise(resolve => setImmediate(resolve))
      while (g.newTrees.size > 0 && this.#live(g)) {
        const batch = [...g.newTrees].map(([p, l]) => ({ path: p, level: l }))
        g.newTrees.clear()
        if (!await g.safe()) break
        try {
          await this.#discovery.addTrees(g, batch, false)
        } catch (err) {
          this.#log.warn({ group: g.key, err, dirs: batch.length }, 'watch event handling failed')
        }
      }
    } finally {
      g.addingTrees = false
    }
  }

  /** One read of a launch dir (see read-scheduler.ts for when): its events out, and whether to read again. */
  async #read (g: Group, dir: string, what: ReadWhat): Promise<ReadOutcome | null> {
    const ld = g.launch.get(dir)
    // No guard here: the read goes through the root's fd (held-root.ts), whatever the path names now.
    if (ld === undefined || !this.#live(g)) return null
    const { events, retry } = await ld.scan(what)
    if (!this.#live(g)) return null
    for (const e of events) this.#emit(e)
    this.#emit({ type: 'activity', launchDir: dir })
    return { retry, live: ld.hasRunning() }
  }

  /**
   * inotify's watches are a per-user kernel budget (fs.inotify.max_user_watches). When it runs out, that group
   * falls back to polling; anything else is logged and the daemon goes on.
   */
  async #onError (g: Group, err: NodeJS.ErrnoException): Promise<void> {
    if (err.code !== 'ENOSPC' || g.opts.poll || !this.#live(g)) {
      if (err.code !== 'ENOSPC') this.#log.warn({ group: g.key, err }, 'watcher error')
      return
    }
    const reason = 'inotify watches exhausted (fs.inotify.max_user_watches); polling instead'
    g.degraded = reason
    g.opts = { ...g.opts, poll: true }
    this.#log.warn({ group: g.key, intervalMs: g.opts.intervalMs }, reason)
    this.#emit({ type: 'degraded', group: g.key, reason })
    await g.closeShards()
    const all = [...g.dirs.keys()]
    for (let i = 0; i < all.length; i += SHARD_PATHS) await this.#watch(g, all.slice(i, i + SHARD_PATHS))
    for (const dir of g.launch.keys()) g.reads.schedule(dir, { history: true, log: true })
  }

  /** Resolves once no launch dir read is running or queued (ReadScheduler.idle): what a test awaits after moving the timers. */
  async idle (): Promise<void> {
    await Promise.all([...this.#groups.values()].map(async g => { await g.reads.idle() }))
  }

  async stop (): Promise<void> {
    this.#stopped = true
    const all = [...this.#groups.values()]
    this.#groups.clear()
    await Promise.all(all.map(async g => { await g.close() }))
    this.#listeners.clear()
  }
}
