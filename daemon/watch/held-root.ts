// A watch root held open, and everything under it reached from that fd (review 5 of issue 16: check and use are one).
// The watcher reads, as root, in dirs users own and rename at will. A path is looked up again at each use, so a check
// of the path (root-check.ts) says nothing about the next use: alice can swap a component of her own path for a
// symlink into a dir she cannot read (renameat2 RENAME_EXCHANGE, atomic) between the two. So the root is opened one
// component at a time from `/`, each O_DIRECTORY|O_NOFOLLOW through the fd of the one before (`/proc/self/fd/N/name`,
// what openat does: the kernel follows the fd, not a path), its owner checked on the fd; every dir below it is reached
// the same way from that fd, and read through the fd of the dir itself. A symlink anywhere is refused, never followed,
// whenever it was swapped in: there is no window between a check and a use.
import { constants, promises as fsp, type Dirent, type Stats } from 'node:fs'
import { basename, dirname, isAbsolute, relative, sep } from 'node:path'
import { openDir } from '../os/read-owned.js'
import type { RootRefusal } from '../store/watch-roots.js'
import type { WalkDir, WalkFs } from './walk.js'

const DIR = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW

/** The path that names `name` inside the dir held by `fd` (the dir itself without a name). */
export function fdPath (fd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`
}

/** The dir `name` (one plain name) in the dir held by `fd`, opened O_DIRECTORY|O_NOFOLLOW; null when it is not one now. */
export async function openChildDir (fd: number, name: string): Promise<fsp.FileHandle | null> {
  if (plainParts(name)?.length !== 1) return null
  return await openDir(fdPath(fd, name))
}

/** The components of a path made of plain names only (no `.`, `..` or empty part); null for anything else. Pure. */
export function plainParts (rel: string): string[] | null {
  if (rel === '') return []
  if (isAbsolute(rel)) return null
  const parts = rel.split(sep)
  return parts.every(p => p !== '' && p !== '.' && p !== '..') ? parts : null
}

/** Why `name` in the dir held by `parent` did not open as a dir: a symlink there now is unsafe, the rest is not seen. */
async function refusalAt (parent: number, name: string, last: boolean): Promise<RootRefusal> {
  try {
    const st = await fsp.lstat(fdPath(parent, name))
    if (st.isSymbolicLink()) return { reason: last ? 'the root is a symlink now' : 'a component of its path is a symlink now', unsafe: true }
    return { reason: 'not a directory', unsafe: false }
  } catch {
    return { reason: 'not found on this node', unsafe: false }
  }
}

/**
 * Open `root` (absolute, canonical) component by component, never through a symlink; with `owner`, the dir must be
 * that user's (checked on the fd). A refusal says why, as root-check.ts does.
 */
export async function openRoot (root: string, owner: number | null): Promise<HeldRoot | RootRefusal> {
  const parts = isAbsolute(root) ? plainParts(root.slice(1)) : null
  if (parts === null) return { reason: 'not found on this node', unsafe: false }
  let cur = await fsp.open('/', DIR)
  let kept = false
  try {
    for (let i = 0; i < parts.length; i++) {
      let next
      try {
        next = await fsp.open(fdPath(cur.fd, parts[i]), DIR)
      } catch {
        return await refusalAt(cur.fd, parts[i]!, i === parts.length - 1)
      }
      await cur.close()
      cur = next
    }
    const st = await cur.stat()
    if (owner !== null && st.uid !== owner) return { reason: 'the root belongs to another user now', unsafe: true }
    kept = true
    return new HeldRoot(root, cur, st)
  } finally {
    if (!kept) await cur.close()
  }
}

export class HeldRoot {
  readonly path: string
  readonly dev: number
  readonly ino: number
  readonly #fh: fsp.FileHandle
  /** calls using the fd's number right now: it is closed only once they are done (a reused number is another dir) */
  #busy = 0
  #closing = false

  constructor (path: string, fh: fsp.FileHandle, st: Stats) {
    this.path = path
    this.#fh = fh
    this.dev = st.dev
    this.ino = st.ino
  }

  async #use<T> (fn: (fd: number) => Promise<T>): Promise<T | null> {
    if (this.#closing) return null
    this.#busy++
    try {
      return await fn(this.#fh.fd)
    } finally {
      if (--this.#busy === 0 && this.#closing) await this.#fh.close().catch(() => {})
    }
  }

  /**
   * A new handle on the dir at `path` (this root or a dir under it), reached from the root's fd one plain name at a
   * time, no symlink followed; null when it is not such a dir now, or (with `owner`) not that uid's: checked on the fd
   * opened, so what was checked is what the caller uses. The caller closes it.
   */
  async openDir (path: string, owner?: number): Promise<fsp.FileHandle | null> {
    const parts = path === this.path ? [] : plainParts(relative(this.path, path))
    if (parts === null) return null
    return await this.#use(async fd => {
      let cur: fsp.FileHandle | null = null
      try {
        for (const p of parts.length === 0 ? ['.'] : parts) {
          const next: fsp.FileHandle = await fsp.open(fdPath(cur?.fd ?? fd, p), DIR)
          await cur?.close()
          cur = next
        }
        if (owner !== undefined && cur !== null && (await cur.stat()).uid !== owner) return null
        const out = cur
        cur = null
        return out
      } catch {
        return null
      } finally {
        await cur?.close()
      }
    })
  }

  /**
   * The walk's and the watcher's fs under this root: paths are the watcher's, each reached as openDir does, or, in a
   * walk, from the held dir the walk gives (`at`: a HeldDir, the dir itself for readdir, the parent for lstat).
   */
  fs (): WalkFs {
    return {
      readdir: async (dir: string, at?: WalkDir): Promise<Dirent[]> => {
        if (at instanceof HeldDir) return await fsp.readdir(fdPath(at.fd), { withFileTypes: true })
        const fh = await this.openDir(dir)
        if (fh === null) throw Object.assign(new Error('not a directory under the watch root'), { code: 'ENOENT' })
        try {
          return await fsp.readdir(fdPath(fh.fd), { withFileTypes: true })
        } finally {
          await fh.close()
        }
      },
      lstat: async (path: string, at?: WalkDir): Promise<Stats> => {
        if (at instanceof HeldDir) return await fsp.lstat(fdPath(at.fd, basename(path)))
        // A name in the root itself (each new top-level dir's event): straight from the root's fd, no open of it.
        if (path !== this.path && dirname(path) === this.path && plainParts(basename(path)) !== null) {
          const st = await this.#use(async fd => await fsp.lstat(fdPath(fd, basename(path))))
          if (st === null) throw Object.assign(new Error('not under the watch root'), { code: 'ENOENT' })
          return st
        }
        const fh = await this.openDir(path === this.path ? path : dirname(path))
        if (fh === null) throw Object.assign(new Error('not under the watch root'), { code: 'ENOENT' })
        try {
          return path === this.path ? await fh.stat() : await fsp.lstat(fdPath(fh.fd, basename(path)))
        } finally {
          await fh.close()
        }
      },
      // One open a dir: by its name from the parent's fd (the walk's start from the root's, as openDir does).
      hold: async (path: string, parent?: WalkDir): Promise<WalkDir | null> => {
        if (parent instanceof HeldDir) {
          try {
            return new HeldDir(await fsp.open(fdPath(parent.fd, basename(path)), DIR))
          } catch {
            return null
          }
        }
        const fh = await this.openDir(path)
        return fh === null ? null : new HeldDir(fh)
      }
    }
  }

  /** Close the root's fd once no call uses it. Idempotent. */
  async close (): Promise<void> {
    if (this.#closing) return
    this.#closing = true
    if (this.#busy === 0) await this.#fh.close().catch(() => {})
  }
}

/** A dir a walk holds open (WalkDir): its fd is used only until close, which the walk calls once its subtree is done. */
class HeldDir implements WalkDir {
  readonly #fh: fsp.FileHandle
  #closed = false

  constructor (fh: fsp.FileHandle) {
    this.#fh = fh
  }

  get fd (): number {
    if (this.#closed) throw Object.assign(new Error('a held dir used after close'), { code: 'EBADF' })
    return this.#fh.fd
  }

  async stat (): Promise<Stats> {
    if (this.#closed) throw Object.assign(new Error('a held dir used after close'), { code: 'EBADF' })
    return await this.#fh.stat()
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#fh.close().catch(() => {})
  }
}
