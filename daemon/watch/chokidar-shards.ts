// How the watcher holds chokidar. A group's paths are split over several small FSWatcher instances ("shards"), each
// added in one call and awaited until chokidar says `ready`, for three reasons measured at 10,000 launch dirs:
// - handing chokidar 20,000 paths at once starts 20,000 lstat/readdir chains together; all of it lives long enough to
//   be promoted, and the old generation grew to 550 MB of mostly garbage that V8 never gave back (RSS 620 MB). Shards
//   of about a hundred paths, one after the other, keep the peak near the live set;
// - `ready` of a shard means its fs.watch handles exist, so a launch dir's seed can be read after its watch is set:
//   a write after the seed then always raises an event (chokidar 5 has no per-path signal; `ready` fires once an
//   instance, hence one instance per batch);
// - a run's launch dir gets a shard of its own, closed when the run ends, instead of chokidar's unwatch(), which keeps
//   an ignore matcher per removed path for the life of the instance.
// In native mode only directories are watched: a per-file fs.watch (one more inotify watch and handle per history and
// log file) is replaced by the directory watches' raw events, which name the file that changed. Native shards are plain
// fs.watch handles (native-shards.ts, same Shard shape); chokidar does the polling mode.
import { basename, dirname } from 'node:path'
import type { Stats } from 'node:fs'
import { FSWatcher } from 'chokidar'
import { CACHE_DIR, HISTORY, LAUNCH_FILES } from '../nextflow/file-names.js'
import type { DirOpener } from './launch-dir.js'
import { skippedName, type WalkFs } from './walk.js'

/**
 * Paths per shard during a walk (half launch dirs, half their `.nextflow`). Measured at 10,000 launch dirs: 2,048 ->
 * RSS 247 MB, 512 -> 196, 128 -> 164 (the live heap is 70 MB in each case; the rest is garbage V8 keeps), and the
 * walk takes no longer.
 */
export const SHARD_PATHS = 128
/** `ready` not seen after this long (it should come in milliseconds): go on rather than stall the walk. */
const READY_MAX_MS = 10_000

export interface ShardHost {
  poll: boolean
  intervalMs: number
  maxDepth: number
  /** tree dirs (level >= 0), and launch dirs and `.nextflow` dirs watched as such (-1) */
  dirs: ReadonlyMap<string, number>
  /** the group's way to its dirs (native shards: from the root's fd, held-root.ts); chokidar polls by path */
  fs: WalkFs
  openDir: DirOpener
  onAll (event: string, path: string): void
  onRaw (file: string | null, watchedPath: string): void
  onError (err: NodeJS.ErrnoException): void
}

export interface Shard {
  paths: Set<string>
  /** resolved once the watches are set (or the shard is closed) */
  ready: Promise<void>
  /** stop watching one of `paths` */
  unwatch (path: string): void
  /** dir -> the names watched in it */
  watched (): Record<string, string[]>
  close (): Promise<void>
}

/**
 * chokidar's filter: our dirs, their `.nextflow`, tree subdirs in depth; files only when polling (stat polling of a
 * dir does not see a file's content change), and then only the three launch files and `history`. Never `work`.
 */
export function ignoredPath (h: ShardHost, path: string, stats?: Stats): boolean {
  if (h.dirs.has(path)) return false
  const name = basename(path)
  if (name === 'work') return true
  if (stats?.isSymbolicLink() === true) return true
  const parent = dirname(path)
  if (basename(parent) === CACHE_DIR && h.dirs.has(parent)) return !h.poll || name !== HISTORY || (stats !== undefined && !stats.isFile())
  const level = h.dirs.get(parent)
  if (level === undefined) return true
  if (LAUNCH_FILES.has(name)) return !h.poll || (stats !== undefined && !stats.isFile())
  if (name === CACHE_DIR) return stats !== undefined && !stats.isDirectory()
  if (skippedName(name) || level < 0 || level >= h.maxDepth) return true
  return stats !== undefined && !stats.isDirectory()
}

/** A chokidar instance watching `paths` (depth 0 each); await `ready` for its watches to be set. */
export function openChokidarShard (h: ShardHost, paths: string[]): Shard {
  const fsw = new FSWatcher({
    depth: 0,
    // Initial events are taken: a dir or `.nextflow` made between the walk and the watch still comes as an addDir.
    ignoreInitial: false,
    followSymlinks: false,
    atomic: false,
    usePolling: h.poll,
    interval: h.intervalMs,
    binaryInterval: h.intervalMs,
    ignored: (p: string, s?: Stats) => ignoredPath(h, p, s)
  })
  fsw.on('all', (event, path) => { h.onAll(event, path) })
  fsw.on('error', (err) => { h.onError(err as NodeJS.ErrnoException) })
  // Native only: chokidar's polling raw events carry stats, not names, and its file watchers cover that mode.
  if (!h.poll) {
    fsw.on('raw', (_ev, file, details) => {
      const watched = (details as { watchedPath?: unknown } | undefined)?.watchedPath
      if (typeof watched === 'string') h.onRaw(typeof file === 'string' && file !== '' ? file : null, watched)
    })
  }
  let done = (): void => {}
  const ready = new Promise<void>(resolve => {
    const timer = setTimeout(resolve, READY_MAX_MS)
    timer.unref()
    done = () => { clearTimeout(timer); resolve() }
  })
  fsw.once('ready', done)
  fsw.add(paths)
  return { paths: new Set(paths), ready, unwatch: (path) => { fsw.unwatch(path) }, watched: () => fsw.getWatched(), close: async () => { done(); await fsw.close() } }
}

/** Union of what the shards watch: dir -> names chokidar tracks in it (tests and diagnostics). */
export function watchedPaths (shards: Iterable<Shard>): Record<string, string[]> {
  const out: Record<string, Set<string>> = {}
  for (const s of shards) {
    for (const [dir, names] of Object.entries(s.watched())) {
      const set = out[dir] ?? new Set<string>()
      for (const n of names) set.add(n)
      out[dir] = set
    }
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v].sort()]))
}
