// The one chokidar wrapper (STYLE habit 8). It watches, per group (a root, or the launch dirs of runs), exactly:
// the dirs of a root's tree down to its depth (to see launch dirs appear), and in each launch dir the dir itself,
// `.nextflow/` and the three files Nextflow writes there. chokidar is told to look at depth 0 of each of those and
// a filter hides every other name, so work/ is never listed, stat'ed inside or watched. Out come debounced domain
// events: launch-dir-found, run-started, run-ended, activity, degraded. stop() is awaited.
import { basename, dirname, join } from 'node:path'
import type { Stats } from 'node:fs'
import { FSWatcher } from 'chokidar'
import type { Logger } from '../logger.js'
import { LaunchDir, type LaunchEvent } from './launch-dir.js'
import { CACHE_DIR, HISTORY, LAUNCH_FILES, isPlainFile, nodeWalkFs, skippedName, walkTree, type WalkFs } from './walk.js'

export interface GroupOptions {
  poll: boolean
  intervalMs: number
}

export type WatcherEvent =
  | LaunchEvent
  | { type: 'launch-dir-found', group: string, launchDir: string }
  | { type: 'activity', launchDir: string }
  | { type: 'degraded', group: string, reason: string }

export interface WatcherOptions {
  logger: Logger
  /** coalesces the bursts of one write (history is truncated, then written) */
  debounceMs?: number
  fs?: WalkFs
}

interface Pending { timer: NodeJS.Timeout, history: boolean, log: boolean, tries: number }

/** One chokidar instance and what it covers. A root's tree dirs have a level; a run's launch dir has none. */
class Group {
  readonly key: string
  opts: GroupOptions
  fsw: FSWatcher
  degraded: string | null = null
  maxDepth: number
  readonly dirs = new Map<string, number>()
  readonly launch = new Map<string, LaunchDir>()
  readonly pending = new Map<string, Pending>()
  /** scans of one launch dir run one after the other: two reads racing could record an older state last */
  readonly scans = new Map<string, Promise<void>>()

  constructor (key: string, opts: GroupOptions, maxDepth: number, make: (g: Group) => FSWatcher) {
    this.key = key
    this.opts = opts
    this.maxDepth = maxDepth
    this.fsw = make(this)
  }

  /** chokidar's filter: only our dirs, their `.nextflow`, the three files, `history`, and tree subdirs in depth. */
  ignored (path: string, stats?: Stats): boolean {
    if (this.dirs.has(path)) return false
    const name = basename(path)
    if (name === 'work') return true
    const parent = dirname(path)
    if (stats?.isSymbolicLink() === true) return true
    if (basename(parent) === CACHE_DIR && this.dirs.has(parent)) return name !== HISTORY || (stats !== undefined && !stats.isFile())
    const level = this.dirs.get(parent)
    if (level === undefined) return true
    if (LAUNCH_FILES.has(name)) return stats !== undefined && !stats.isFile()
    if (name === CACHE_DIR) return stats !== undefined && !stats.isDirectory()
    if (skippedName(name) || level < 0 || level >= this.maxDepth) return true
    return stats !== undefined && !stats.isDirectory()
  }
}

export class RunDirWatcher {
  readonly #log: Logger
  readonly #debounceMs: number
  readonly #recheck = new Map<string, NodeJS.Timeout>()
  readonly #fs: WalkFs
  readonly #groups = new Map<string, Group>()
  readonly #listeners = new Set<(e: WatcherEvent) => void>()
  #stopped = false

  constructor (opts: WatcherOptions) {
    this.#log = opts.logger.child({ room: 'watch' })
    this.#debounceMs = opts.debounceMs ?? 50
    this.#fs = opts.fs ?? nodeWalkFs
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

  #make (g: Group): FSWatcher {
    const fsw = new FSWatcher({
      depth: 0,
      // chokidar reads a dir some time after add(): what appears meanwhile comes as an initial event, so take them all
      // (the handlers are idempotent) rather than miss a dir or a history file made in that window.
      ignoreInitial: false,
      followSymlinks: false,
      atomic: false,
      usePolling: g.opts.poll,
      interval: g.opts.intervalMs,
      binaryInterval: g.opts.intervalMs,
      ignored: (p: string, s?: Stats) => g.ignored(p, s)
    })
    fsw.on('all', (event, path) => { void this.#onFs(g, event, path) })
    fsw.on('error', (err) => { void this.#onError(g, err as NodeJS.ErrnoException) })
    return fsw
  }

  /** Start watching a group: a root's tree (depth >= 0) or, with `root: null`, nothing until addLaunchDir. */
  async addGroup (key: string, opts: GroupOptions, root: { path: string, depth: number } | null): Promise<{ launchDirs: number, dirs: number }> {
    if (this.#stopped || this.#groups.has(key)) return { launchDirs: 0, dirs: 0 }
    const g = new Group(key, opts, root?.depth ?? -1, (gg) => this.#make(gg))
    this.#groups.set(key, g)
    if (root === null) return { launchDirs: 0, dirs: 0 }
    return await this.#addTree(g, root.path, 0, true)
  }

  async removeGroup (key: string): Promise<void> {
    const g = this.#groups.get(key)
    if (g === undefined) return
    this.#groups.delete(key)
    for (const p of g.pending.values()) clearTimeout(p.timer)
    await g.fsw.close()
  }

  /** Watch one launch dir in a group (a run's dir outside every root). */
  async addLaunchDir (key: string, dir: string): Promise<void> {
    const g = this.#groups.get(key)
    if (g === undefined || g.dirs.has(dir)) return
    g.dirs.set(dir, -1)
    g.fsw.add(dir)
    await this.#watchCache(g, dir, true)
  }

  async removeLaunchDir (key: string, dir: string): Promise<void> {
    const g = this.#groups.get(key)
    if (g === undefined || !g.dirs.has(dir)) return
    const cache = join(dir, CACHE_DIR)
    g.fsw.unwatch([dir, cache])
    g.dirs.delete(dir)
    g.dirs.delete(cache)
    g.launch.delete(dir)
    const p = g.pending.get(dir)
    if (p !== undefined) clearTimeout(p.timer)
    g.pending.delete(dir)
  }

  /** Is `dir` a launch dir or tree dir of some group (other than those in `except`)? */
  covers (dir: string, except: string[] = []): boolean {
    for (const g of this.#groups.values()) if (!except.includes(g.key) && g.dirs.has(dir)) return true
    return false
  }

  groups (): Array<{ key: string, launchDirs: number, dirs: number, degraded: string | null, poll: boolean }> {
    return [...this.#groups.values()].map(g => ({ key: g.key, launchDirs: g.launch.size, dirs: g.dirs.size, degraded: g.degraded, poll: g.opts.poll }))
  }

  /** chokidar's own list of watched paths, per group: for tests and diagnostics. */
  watched (key: string): Record<string, string[]> {
    return this.#groups.get(key)?.fsw.getWatched() ?? {}
  }

  async #addTree (g: Group, start: string, level: number, seed: boolean): Promise<{ launchDirs: number, dirs: number }> {
    const found = await walkTree(start, level, g.maxDepth, this.#fs)
    if (found.truncated) this.#log.warn({ group: g.key, dirs: found.dirs.length }, 'watch root is too large; watching part of it')
    const fresh = found.dirs.filter(d => !g.dirs.has(d.path))
    for (const d of fresh) g.dirs.set(d.path, d.level)
    if (fresh.length > 0) g.fsw.add(fresh.map(d => d.path))
    // Bounded fan-out: a root of thousands of launch dirs is read in parallel, not one after the other.
    for (let i = 0; i < found.cacheDirs.length; i += 32) {
      await Promise.all(found.cacheDirs.slice(i, i + 32).map(async dir => await this.#watchCache(g, dir, seed)))
    }
    return { launchDirs: found.launchDirs.length, dirs: found.dirs.length }
  }

  /** `<dir>/.nextflow` exists (or may appear): watch it, and take `dir` as a launch dir once history is there. */
  async #watchCache (g: Group, dir: string, seed: boolean): Promise<void> {
    const cache = join(dir, CACHE_DIR)
    if (!g.dirs.has(cache)) {
      try {
        const st = await this.#fs.lstat(cache)
        if (!st.isDirectory()) return
      } catch {
        return
      }
      g.dirs.set(cache, -1)
      g.fsw.add(cache)
    }
    if (await isPlainFile(this.#fs, join(cache, HISTORY))) await this.#found(g, dir, seed)
  }

  async #found (g: Group, dir: string, seed: boolean): Promise<void> {
    if (g.launch.has(dir) || this.#stopped) return
    const ld = await LaunchDir.open(dir, seed)
    if (ld === null || g.launch.has(dir) || !this.#groups.has(g.key)) return
    g.launch.set(dir, ld)
    this.#emit({ type: 'launch-dir-found', group: g.key, launchDir: dir })
    if (!seed) this.#schedule(g, dir, { history: true, log: true })
  }

  async #onFs (g: Group, event: string, path: string): Promise<void> {
    if (this.#stopped || this.#groups.get(g.key) !== g) return
    const name = basename(path)
    const parent = dirname(path)
    try {
      if (event === 'addDir') {
        if (g.dirs.has(path)) return
        if (name === CACHE_DIR) await this.#watchCache(g, parent, false)
        // A dir made while watched is read from scratch: `mkdir p && cd p && nextflow run` must not be missed.
        else if (g.dirs.has(parent) && (g.dirs.get(parent) ?? -1) >= 0) await this.#addTree(g, path, (g.dirs.get(parent) ?? 0) + 1, false)
      } else if (event === 'unlinkDir') {
        for (const d of [...g.dirs.keys()]) {
          if (d === path || d.startsWith(`${path}/`)) { g.dirs.delete(d); g.launch.delete(d) }
        }
      } else if (name === HISTORY && basename(parent) === CACHE_DIR) {
        const dir = dirname(parent)
        if (!g.launch.has(dir)) await this.#found(g, dir, false)
        else this.#schedule(g, dir, { history: true, log: false })
      } else if (LAUNCH_FILES.has(name) && g.launch.has(parent)) {
        this.#schedule(g, parent, { history: false, log: name !== '.nextflow.pid' })
      }
    } catch (err) {
      this.#log.warn({ group: g.key, err }, 'watch event handling failed')
    }
  }

  #schedule (g: Group, dir: string, what: { history: boolean, log: boolean }, tries = 0): void {
    const p = g.pending.get(dir)
    if (p !== undefined) {
      p.history ||= what.history
      p.log ||= what.log
      return
    }
    const entry: Pending = {
      history: what.history,
      log: what.log,
      tries,
      timer: setTimeout(() => { this.#queueScan(g, dir, entry) }, this.#debounceMs)
    }
    g.pending.set(dir, entry)
  }

  #queueScan (g: Group, dir: string, p: Pending): void {
    g.pending.delete(dir)
    const next = (g.scans.get(dir) ?? Promise.resolve()).then(async () => await this.#scan(g, dir, p)).catch((err: unknown) => {
      this.#log.warn({ dir, err }, 'scanning a launch dir failed')
    })
    g.scans.set(dir, next)
    void next.finally(() => { if (g.scans.get(dir) === next) g.scans.delete(dir) })
  }

  async #scan (g: Group, dir: string, p: Pending): Promise<void> {
    const ld = g.launch.get(dir)
    if (ld === undefined || this.#stopped) return
    const { events, retry } = await ld.scan(p)
    if (this.#stopped) return
    for (const e of events) this.#emit(e)
    this.#emit({ type: 'activity', launchDir: dir })
    if (retry && p.tries < 5) this.#schedule(g, dir, { history: true, log: false }, p.tries + 1)
    // While a run is live here, read again every interval: an event lost under load (or never raised, as on a network
    // filesystem) must not leave its end unseen. Two small files a dir, only for dirs with a live run.
    if (ld.hasRunning() && !this.#recheck.has(dir)) {
      const timer = setTimeout(() => {
        this.#recheck.delete(dir)
        if (!this.#stopped && g.launch.has(dir)) this.#schedule(g, dir, { history: true, log: true })
      }, g.opts.intervalMs)
      timer.unref()
      this.#recheck.set(dir, timer)
    }
  }

  /**
   * inotify's watches are a per-user kernel budget (fs.inotify.max_user_watches). When it runs out, that group
   * falls back to polling; anything else is logged and the daemon goes on.
   */
  async #onError (g: Group, err: NodeJS.ErrnoException): Promise<void> {
    if (err.code !== 'ENOSPC' || g.opts.poll || this.#stopped || this.#groups.get(g.key) !== g) {
      if (err.code !== 'ENOSPC') this.#log.warn({ group: g.key, err }, 'watcher error')
      return
    }
    const reason = 'inotify watches exhausted (fs.inotify.max_user_watches); polling instead'
    g.degraded = reason
    g.opts = { ...g.opts, poll: true }
    this.#log.warn({ group: g.key, intervalMs: g.opts.intervalMs }, reason)
    const old = g.fsw
    g.fsw = this.#make(g)
    await old.close()
    g.fsw.add([...g.dirs.keys()])
    this.#emit({ type: 'degraded', group: g.key, reason })
    for (const dir of g.launch.keys()) this.#schedule(g, dir, { history: true, log: true })
  }

  async stop (): Promise<void> {
    this.#stopped = true
    for (const timer of this.#recheck.values()) clearTimeout(timer)
    this.#recheck.clear()
    const all = [...this.#groups.values()]
    this.#groups.clear()
    for (const g of all) for (const p of g.pending.values()) clearTimeout(p.timer)
    await Promise.all(all.map(async g => await g.fsw.close()))
    this.#listeners.clear()
  }
}
