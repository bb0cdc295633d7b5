// The bounded discovery walk below a watch root, and the rule of which names the watcher may look at.
// A launch dir's work/ can hold millions of entries on a cluster: no name `work` is ever listed, stat'ed inside or
// watched, dot-dirs other than `.nextflow` are skipped, and symlinks are never followed (as root a user could point
// one anywhere). The fs is injectable so a test can count every directory read.
import type { Dirent, Stats } from 'node:fs'
import { promises as fsp } from 'node:fs'
import { basename, join } from 'node:path'
import { CACHE_DIR, HISTORY } from '../nextflow/file-names.js'

export interface WalkFs {
  readdir (dir: string): Promise<Dirent[]>
  lstat (path: string): Promise<Stats>
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
}

/** A directory (not a symlink) of `uid` at `path`? */
async function ownedDir (fs: WalkFs, path: string, uid: number): Promise<boolean> {
  try {
    const st = await fs.lstat(path)
    return st.isDirectory() && st.uid === uid
  } catch {
    return false
  }
}

/** A regular file (not a symlink) at `path`? */
export async function isPlainFile (fs: WalkFs, path: string): Promise<boolean> {
  try {
    return (await fs.lstat(path)).isFile()
  } catch {
    return false
  }
}

export interface WalkOptions {
  /** stop after this many dirs (tree dirs and `.nextflow` dirs together) */
  limit?: number
  /** enter only dirs owned by this uid (a user's watch does not walk anyone else's dirs); any owner when absent */
  owner?: number
}

/** Dirs of one level looked at together: under a root held open each look is a chain of opens (held-root.ts). */
const WALK_FANOUT = 16

interface Looked { dir: TreeDir, entries: Dirent[] | null, history: boolean }

/** One dir of the walk: owned (with `owner`), its entries, and whether its `.nextflow/history` is a plain file. */
async function look (fs: WalkFs, dir: TreeDir, owner: number | undefined): Promise<Looked | null> {
  if (owner !== undefined && !(await ownedDir(fs, dir.path, owner))) return null
  let entries: Dirent[]
  try {
    entries = await fs.readdir(dir.path)
  } catch {
    return { dir, entries: null, history: false }
  }
  const cache = entries.some(e => e.name === CACHE_DIR && e.isDirectory())
  return { dir, entries, history: cache && await isPlainFile(fs, join(dir.path, CACHE_DIR, HISTORY)) }
}

/**
 * Breadth-first from `start` (at `startLevel`) down to `maxDepth`. Directory types come from readdir's d_type, so
 * only a `.nextflow/history` candidate costs an lstat (and, with `owner`, each dir one more); unreadable dirs are
 * skipped. WALK_FANOUT dirs of a level are looked at together and taken in order, so the limit cuts where it did.
 */
export async function walkTree (start: string, startLevel: number, maxDepth: number, fs: WalkFs = nodeWalkFs, opts: WalkOptions = {}): Promise<WalkResult> {
  const limit = opts.limit ?? 200_000
  const out: WalkResult = { dirs: [], launchDirs: [], cacheDirs: [], truncated: false }
  if (skippedName(basename(start)) && startLevel > 0) return out
  let queue: TreeDir[] = [{ path: start, level: startLevel }]
  while (queue.length > 0) {
    const next: TreeDir[] = []
    for (let i = 0; i < queue.length; i += WALK_FANOUT) {
      const looked = await Promise.all(queue.slice(i, i + WALK_FANOUT).map(async d => await look(fs, d, opts.owner)))
      for (const l of looked) {
        if (out.dirs.length + out.cacheDirs.length >= limit) {
          out.truncated = true
          return out
        }
        if (l === null) continue
        out.dirs.push(l.dir)
        for (const e of l.entries ?? []) {
          if (e.name === CACHE_DIR) {
            if (!e.isDirectory()) continue
            out.cacheDirs.push(l.dir.path)
            if (l.history) out.launchDirs.push(l.dir.path)
            continue
          }
          if (skippedName(e.name) || !e.isDirectory() || l.dir.level >= maxDepth) continue
          next.push({ path: join(l.dir.path, e.name), level: l.dir.level + 1 })
        }
      }
    }
    queue = next
  }
  return out
}
