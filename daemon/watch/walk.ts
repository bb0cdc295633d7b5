// The bounded discovery walk below a watch root, and the rule of which names the watcher may look at.
// A launch dir's work/ can hold millions of entries on a cluster: no name `work` is ever listed, stat'ed inside or
// watched, dot-dirs other than `.nextflow` are skipped, and symlinks are never followed (as root a user could point
// one anywhere). The fs is injectable so a test can count every directory read.
import type { Dirent, Stats } from 'node:fs'
import { promises as fsp } from 'node:fs'
import { basename, join } from 'node:path'
import { CACHE_DIR, HISTORY } from '../nextflow/file-names.js'

/** A dir the walk holds open while it looks at it and walks below it (held-root.ts). */
export interface WalkDir {
  /** the fd held (held-root.ts): a watch can be set through it (native-shards.ts) */
  readonly fd?: number
  /** fstat of the dir held: its owner is checked on what is walked, not on a name looked up before the open */
  stat (): Promise<Stats>
  /** idempotent */
  close (): Promise<void>
}

/**
 * Paths are always given (a test's wrapper sees every dir read); `at` is an optional held dir: for readdir `dir`
 * itself, for lstat the parent of `path`. Without `hold` (by path) or without `at` the call goes by path.
 */
export interface WalkFs {
  readdir (dir: string, at?: WalkDir): Promise<Dirent[]>
  lstat (path: string, at?: WalkDir): Promise<Stats>
  /** Hold the dir `path` open, reached from `parent` (its parent, held) by one name; null when it is not a dir now. */
  hold? (path: string, parent?: WalkDir): Promise<WalkDir | null>
}

export const nodeWalkFs: WalkFs = {
  readdir: async (dir) => await fsp.readdir(dir, { withFileTypes: true }),
  lstat: async (path) => await fsp.lstat(path)
}

/** Names the walk and the watcher never enter: Nextflow's work dir, and dot-dirs but `.nextflow`. Pure. */
export function skippedName (name: string): boolean {
  return name === 'work' || (name.startsWith('.') && name !== CACHE_DIR)
}

export interface TreeDir {
  path: string
  /** 0 for the root itself */
  level: number
}

export interface WalkResult {
  dirs: TreeDir[]
  /** dirs holding `.nextflow/history` */
  launchDirs: string[]
  /** dirs holding a `.nextflow` dir (with or without history yet) */
  cacheDirs: string[]
  /** the walk stopped at `limit` dirs */
  truncated: boolean
  /** launch dirs left open for the caller (WalkOptions.keep), who closes them */
  kept: KeptDir[]
}

/**
 * A launch dir with nothing below it to walk, left open as the walk held it (with its `.nextflow`) and its owner read
 * on that fd: its watches and its owner are then those of the dir the walk looked at (discovery.ts), with no second
 * open of either by name.
 */
export interface KeptDir {
  path: string
  dir: WalkDir
  cache: WalkDir
  uid: number
}

/** A directory (not a symlink) of `uid` at `path`, or held (then on its fd)? */
async function ownedDir (fs: WalkFs, path: string | WalkDir, uid: number): Promise<boolean> {
  try {
    const st = typeof path === 'string' ? await fs.lstat(path) : await path.stat()
    return st.isDirectory() && st.uid === uid
  } catch {
    return false
  }
}

/** A regular file (not a symlink) at `path`? */
export async function isPlainFile (fs: WalkFs, path: string, parent?: WalkDir): Promise<boolean> {
  try {
    return (await fs.lstat(path, parent)).isFile()
  } catch {
    return false
  }
}

export interface WalkOptions {
  /** stop after this many dirs (tree dirs and `.nextflow` dirs together) */
  limit?: number
  /** enter only dirs owned by this uid (a user's watch does not walk anyone else's dirs); any owner when absent */
  owner?: number
  /** leave up to `left` launch dirs open (KeptDir), counting it down; shared by the walks of one batch */
  keep?: { left: number }
}

/**
 * Sibling dirs looked at together. Under a held root each dir is opened from its parent's fd (one open a dir, plus
 * one for a `.nextflow`); a dir stays open only while there is something below it to walk, so a walk holds at most
 * WALK_FANOUT dirs per level open at once, each closed once its subtree is done.
 */
const WALK_FANOUT = 16

interface Looked { dir: TreeDir, entries: Dirent[] | null, history: boolean, below: TreeDir[], held: WalkDir | null, kept: KeptDir | null }

/**
 * Is `.nextflow/history` of the held dir `dir` a plain file? `.nextflow` opened from the dir's fd, no symlink. With
 * `keep`, a `.nextflow` holding one is handed back open (the caller closes it).
 */
async function hasHistory (fs: WalkFs, dir: string, held: WalkDir | null, keep = false): Promise<{ history: boolean, cache: WalkDir | null }> {
  const cache = join(dir, CACHE_DIR)
  if (fs.hold === undefined || held === null) return { history: await isPlainFile(fs, join(cache, HISTORY)), cache: null }
  const c = await fs.hold(cache, held)
  if (c === null) return { history: false, cache: null }
  let history = false
  try {
    history = await isPlainFile(fs, join(cache, HISTORY), c)
    return { history, cache: history && keep ? c : null }
  } finally {
    if (!history || !keep) await c.close()
  }
}

/**
 * Open `dir` for the walk (from `parent` when the fs holds dirs) if it is to be walked: with `owner`, only a dir of
 * that uid. Under a held root the owner is checked on the fd opened (a name lstat'ed first could be renamed away and
 * another user's dir renamed in before the open); by path there is nothing held and the path itself is checked.
 * Null: not walked at all; 'none': recorded but not read (not a dir now, without `owner`); 'path': walked by path.
 */
async function enter (fs: WalkFs, dir: TreeDir, parent: WalkDir | null, owner: number | undefined): Promise<WalkDir | 'none' | 'path' | null> {
  if (fs.hold === undefined) return owner === undefined || await ownedDir(fs, dir.path, owner) ? 'path' : null
  const held = await fs.hold(dir.path, parent ?? undefined).catch(() => null)
  if (owner !== undefined && (held === null || !(await ownedDir(fs, held, owner)))) {
    await held?.close()
    return null
  }
  return held ?? 'none'
}

/**
 * One dir of the walk, reached from `parent` (held) when the fs holds dirs: owned (with `owner`), its entries, whether
 * its `.nextflow/history` is a plain file, and the dirs below it to walk (the dir stays held only if there are some).
 */
async function look (fs: WalkFs, dir: TreeDir, parent: WalkDir | null, maxDepth: number, owner: number | undefined, keep: { left: number } | undefined): Promise<Looked | null> {
  const entered = await enter(fs, dir, parent, owner)
  if (entered === null) return null
  const none: Looked = { dir, entries: null, history: false, below: [], held: null, kept: null }
  if (entered === 'none') return none
  const held = entered === 'path' ? null : entered
  let entries: Dirent[]
  try {
    entries = await fs.readdir(dir.path, held ?? undefined)
  } catch {
    await held?.close()
    return none
  }
  const below: TreeDir[] = []
  for (const e of entries) {
    if (e.name === CACHE_DIR || skippedName(e.name) || !e.isDirectory() || dir.level >= maxDepth) continue
    below.push({ path: join(dir.path, e.name), level: dir.level + 1 })
  }
  const cache = entries.some(e => e.name === CACHE_DIR && e.isDirectory())
  // A leaf launch dir may be kept open for its watches (WalkOptions.keep): counted before the awaits, so the walks of a
  // batch never keep more than asked between them.
  const keeping = keep !== undefined && keep.left > 0 && held !== null && cache && below.length === 0
  if (keeping) keep.left--
  let history = false
  let kept: KeptDir | null = null
  try {
    const h = cache ? await hasHistory(fs, dir.path, held, keeping) : { history: false, cache: null }
    history = h.history
    if (h.cache !== null) {
      try {
        // with `owner`, enter() checked just that on this fd: no second fstat
        kept = { path: dir.path, dir: held!, cache: h.cache, uid: owner ?? (await held!.stat()).uid }
      } catch {
        await h.cache.close()
      }
    }
  } finally {
    if (keeping && kept === null) keep.left++
    if (below.length === 0 && kept === null) await held?.close()
  }
  return { dir, entries, history, below, held: below.length === 0 ? null : held, kept }
}

interface Walk { fs: WalkFs, out: WalkResult, limit: number, maxDepth: number, owner: number | undefined, keep: { left: number } | undefined }

/**
 * `dirs` (children of the held `parent`, or the start) WALK_FANOUT at a time, taken in order: each is recorded, then
 * walked below, before the next. True once the limit is reached (the walk stops there).
 */
async function walkDirs (w: Walk, dirs: readonly TreeDir[], parent: WalkDir | null): Promise<boolean> {
  for (let i = 0; i < dirs.length; i += WALK_FANOUT) {
    const looked = await Promise.all(dirs.slice(i, i + WALK_FANOUT).map(async d => await look(w.fs, d, parent, w.maxDepth, w.owner, w.keep)))
    try {
      for (const l of looked) {
        if (w.out.dirs.length + w.out.cacheDirs.length >= w.limit) {
          w.out.truncated = true
          return true
        }
        if (l === null) continue
        w.out.dirs.push(l.dir)
        if (l.entries?.some(e => e.name === CACHE_DIR && e.isDirectory()) === true) {
          w.out.cacheDirs.push(l.dir.path)
          if (l.history) w.out.launchDirs.push(l.dir.path)
        }
        if (l.kept !== null) {
          w.out.kept.push(l.kept)
          l.kept = null
        }
        if (l.below.length > 0 && await walkDirs(w, l.below, l.held)) return true
        await l.held?.close()
      }
    } finally {
      // what was looked at but not recorded (the limit reached, an error): nothing is left open
      for (const l of looked) {
        await l?.held?.close()
        if (l?.kept != null) await Promise.all([l.kept.dir.close(), l.kept.cache.close()])
      }
    }
  }
  return false
}

/**
 * Depth-first from `start` (at `startLevel`) down to `maxDepth`, siblings looked at WALK_FANOUT at a time. Directory
 * types come from readdir's d_type, so only a `.nextflow/history` candidate costs an lstat (and, with `owner`, each
 * dir one more stat); unreadable dirs are skipped. With an fs that holds dirs (held-root.ts) each dir is opened once,
 * from its parent's fd, never again from the root by path, and its owner is checked on that fd: no fd is kept by
 * path, so a rename in the tree is never served a dir that was there before, nor one whose owner was not checked.
 */
export async function walkTree (start: string, startLevel: number, maxDepth: number, fs: WalkFs = nodeWalkFs, opts: WalkOptions = {}): Promise<WalkResult> {
  const out: WalkResult = { dirs: [], launchDirs: [], cacheDirs: [], truncated: false, kept: [] }
  if (skippedName(basename(start)) && startLevel > 0) return out
  try {
    await walkDirs({ fs, out, limit: opts.limit ?? 200_000, maxDepth, owner: opts.owner, keep: opts.keep }, [{ path: start, level: startLevel }], null)
  } catch (err) {
    await Promise.all(out.kept.map(async k => await Promise.all([k.dir.close(), k.cache.close()])))
    throw err
  }
  return out
}
