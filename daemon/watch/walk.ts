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

/**
 * Breadth-first from `start` (at `startLevel`) down to `maxDepth`. Directory types come from readdir's d_type, so
 * only a `.nextflow/history` candidate costs an lstat (and, with `owner`, each dir one more); unreadable dirs are
 * skipped.
 */
export async function walkTree (start: string, startLevel: number, maxDepth: number, fs: WalkFs = nodeWalkFs, opts: WalkOptions = {}): Promise<WalkResult> {
  const limit = opts.limit ?? 200_000
  const out: WalkResult = { dirs: [], launchDirs: [], cacheDirs: [], truncated: false }
  if (skippedName(basename(start)) && startLevel > 0) return out
  let queue: TreeDir[] = [{ path: start, level: startLevel }]
  while (queue.length > 0) {
    const next: TreeDir[] = []
    for (const dir of queue) {
      if (out.dirs.length + out.cacheDirs.length >= limit) {
        out.truncated = true
        return out
      }
      if (opts.owner !== undefined && !(await ownedDir(fs, dir.path, opts.owner))) continue
      out.dirs.push(dir)
      let entries: Dirent[]
      try {
        entries = await fs.readdir(dir.path)
      } catch {
        continue
      }
      for (const e of entries) {
        if (e.name === CACHE_DIR) {
          if (!e.isDirectory()) continue
          out.cacheDirs.push(dir.path)
          if (await isPlainFile(fs, join(dir.path, CACHE_DIR, HISTORY))) out.launchDirs.push(dir.path)
          continue
        }
        if (skippedName(e.name) || !e.isDirectory() || dir.level >= maxDepth) continue
        next.push({ path: join(dir.path, e.name), level: dir.level + 1 })
      }
    }
    queue = next
  }
  return out
}
