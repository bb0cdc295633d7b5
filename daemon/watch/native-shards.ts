// The native (inotify) half of the watcher's shards: one plain fs.watch a directory, no chokidar. Natively the watcher
// only ever watches directories at depth 0 and learns of files from their dirs' events (chokidar-shards.ts), so of
// chokidar it used the inotify watch, a lstat of each name an event brings (to tell addDir from unlinkDir) and an
// initial listing; done here directly, a shard of 128 dirs costs their inotify_add_watch calls and a listing of the
// tree dirs only. Measured with 1,000 launch dirs moved into a watched root at once: see bench/README.md "discovery".
// chokidar still does polling (its stat loops are what that mode needs) behind the same Shard shape.
import { watch, type FSWatcher } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { ignoredPath, type Shard, type ShardHost } from './chokidar-shards.js'
import { fdPath, openChildDir } from './held-root.js'
import { CACHE_DIR } from '../nextflow/file-names.js'

const NO_FDS: ReadonlyMap<string, number> = new Map()

/**
 * What a 'rename' event for `name` in watched dir `dir` means to the watcher: a dir to add (it exists, is a directory
 * the filter lets through), one to drop (gone, and was watched), or nothing. Everything else comes through onRaw.
 */
async function dirEvent (h: ShardHost, path: string): Promise<'addDir' | 'unlinkDir' | null> {
  if (!h.dirs.has(path) && ignoredPath(h, path)) return null
  try {
    const st = await h.fs.lstat(path)
    return st.isDirectory() && !ignoredPath(h, path, st) ? 'addDir' : null
  } catch {
    return h.dirs.has(path) ? 'unlinkDir' : null
  }
}

/**
 * What chokidar's initial scan gave: an addDir for each dir that appeared between the walk and the watch. A tree dir
 * above the depth is listed (a new subdir); a launch dir is only asked for its `.nextflow`; a `.nextflow` has no dirs
 * the watcher wants. The watcher ignores addDirs of dirs it knows.
 */
async function initialDirs (h: ShardHost, path: string): Promise<string[]> {
  const level = h.dirs.get(path)
  if (level === undefined || (basename(path) === CACHE_DIR && h.dirs.has(dirname(path)))) return []
  try {
    if (level >= 0 && level < h.maxDepth) {
      const entries = await h.fs.readdir(path)
      return entries.map(e => ({ p: join(path, e.name), e })).filter(({ p, e }) => e.isDirectory() && !ignoredPath(h, p, e as never)).map(({ p }) => p)
    }
    const cache = join(path, CACHE_DIR)
    if (h.dirs.has(cache)) return []
    return (await h.fs.lstat(cache)).isDirectory() ? [cache] : []
  } catch {
    return []
  }
}

/**
 * One fs.watch for each of `paths` (directories); `ready` once every watch is set and the initial addDirs are out.
 * Each dir is opened as the group reaches it (from its root's fd, no symlink followed) and the inotify watch is set
 * through that fd (`/proc/self/fd/N/.`): a path swapped meanwhile cannot put a watch on a dir elsewhere. The `/.`
 * keeps libuv's name for events on the dir itself at `.` (it reports the basename of the path it watched).
 */
export function openNativeShard (h: ShardHost, paths: string[], given: ReadonlyMap<string, number> = NO_FDS): Shard {
  // Each watch -> the dir it watches. One listener of each kind for the whole shard, told apart by `this` (the
  // FSWatcher that emits): a closure and its context per watch were about 100 bytes of heap each, 20,000 watches at
  // 10,000 launch dirs (bench/README.md "Issue 18"). A shard holds at most SHARD_PATHS dirs, so a lookup by dir is a scan.
  const watchers = new Map<FSWatcher, string>()
  const dropped = new Set<string>()
  let closed = false
  function onChange (this: FSWatcher, event: string, file: string | Buffer | null): void {
    const p = watchers.get(this)
    if (closed || p === undefined) return
    const name = typeof file === 'string' && file !== '' && file !== '.' ? file : null
    h.onRaw(name, p)
    if (event !== 'rename' || name === null) return
    const child = join(p, name)
    void dirEvent(h, child).then(kind => { if (kind !== null && !closed) h.onAll(kind, child) })
  }
  const onError = (err: Error): void => { if (!closed) h.onError(err as NodeJS.ErrnoException) }
  const listen = (p: string, fd: number): void => {
    const w = watch(`${fdPath(fd)}/.`, { persistent: true }, onChange)
    w.on('error', onError)
    watchers.set(w, p)
  }
  const watcherOf = (path: string): FSWatcher | undefined => {
    for (const [w, p] of watchers) if (p === path) return w
    return undefined
  }
  const ready = (async () => {
    // The shard's dirs are opened together (128 at most), watched, and closed: the watch holds the inode, not the fd.
    // A `.nextflow` whose launch dir is in this shard is opened by its name from that dir's fd, not reached again from
    // the root (one open instead of two and a close; the same rule: one plain name, O_NOFOLLOW|O_DIRECTORY).
    const inShard = new Set(paths)
    const fromParent = (p: string): boolean => basename(p) === CACHE_DIR && inShard.has(dirname(p))
    const toOpen = paths.filter(p => !given.has(p))
    const held = await Promise.all(toOpen.filter(p => !fromParent(p)).map(async p => ({ p, fh: await h.openDir(p) })))
    const fhOf = new Map(held.map(({ p, fh }) => [p, fh]))
    held.push(...await Promise.all(toOpen.filter(fromParent).map(async p => {
      const parent = fhOf.get(dirname(p))?.fd ?? given.get(dirname(p))
      return { p, fh: parent === undefined ? null : await openChildDir(parent, CACHE_DIR) }
    })))
    let failed: NodeJS.ErrnoException | null = null
    try {
      for (const [p, fd] of [...[...given].filter(([p]) => inShard.has(p)), ...held.map(({ p, fh }) => [p, fh?.fd] as const)]) {
        try {
          if (fd !== undefined && failed === null && !closed && !dropped.has(p)) listen(p, fd)
        } catch (err) {
          // A dir gone meanwhile is no error. ENOSPC (the inotify budget) stops the shard: the watcher falls back to
          // polling (it closes every shard of the group, this one included).
          const code = (err as NodeJS.ErrnoException).code
          if (code !== 'ENOENT' && code !== 'ENOTDIR') failed = err as NodeJS.ErrnoException
        }
      }
    } finally {
      // Closed together once every watch is set (inotify_add_watch is synchronous): one after the other they were a
      // chain of thread-pool round trips, 2,000 in a row for a `mv` of 1,000 launch dirs (bench/README.md Issue 18).
      await Promise.all(held.map(async ({ fh }) => { await fh?.close() }))
    }
    if (failed !== null) {
      if (!closed) h.onError(failed)
      return
    }
    const found = await Promise.all([...watchers.values()].map(async p => await initialDirs(h, p)))
    for (const d of found.flat()) if (!closed) h.onAll('addDir', d)
  })()
  return {
    paths: new Set(paths),
    ready,
    unwatch: (path) => {
      dropped.add(path)
      const w = watcherOf(path)
      w?.close()
      if (w !== undefined) watchers.delete(w)
    },
    watched: () => {
      const out: Record<string, string[]> = {}
      for (const p of watchers.values()) out[p] = []
      for (const p of watchers.values()) out[dirname(p)]?.push(basename(p))
      return out
    },
    close: async () => {
      closed = true
      for (const w of watchers.keys()) w.close()
      watchers.clear()
    }
  }
}
