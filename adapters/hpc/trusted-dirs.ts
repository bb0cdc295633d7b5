// The hpc target's trusted directories, from / down to `<runsRoot>/<user>` and the run dirs made in them: every
// component a directory (or a root-owned symlink) owned by root or the daemon, that no other user can write (a sticky
// dir such as /tmp is fine above the root, because a user can neither replace nor remove what root owns there),
// checked with lstat on each call. So the only directory a user ever controls is their run dir (safe-fs.ts).
import { constants } from 'node:fs'
import { lstat, mkdir, open, readlink } from 'node:fs/promises'
import type { Stats } from 'node:fs'
import { isAbsolute, join } from 'node:path'
import { isCoded, nfsError } from '../../daemon/errors.js'
import type { CodedError } from '../../daemon/errors.js'
import { pathComponents, walkComponents } from './path-walk.js'

export interface Owner { uid: number, gid: number }

const S_ISVTX = 0o1000

export function unsafePath (path: string, why: string): CodedError {
  return nfsError('NFS_ERR_UNSAFE_PATH', [path, why])
}

function isTrustedUid (uid: number): boolean {
  return uid === 0 || uid === process.geteuid?.()
}

export async function lstatOrNull (path: string): Promise<Stats | null> {
  try {
    return await lstat(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw err
  }
}

/**
 * Runs roots whose last walk found every component a directory of root's or the daemon's that nobody else can write
 * (no symlink, nothing made, no sticky dir such as /tmp on the way): only root or the daemon can change what such a
 * path names. Only these are looked at all at once (lookedAtOnce). Anywhere else an early lstat would go through what
 * a user planted in a writable dir before the walk refused it: a symlink into an automount or a FUSE mount of theirs
 * could hold a thread of the pool for good, call after call. Those walks look at one component at a time.
 */
const closedPaths = new Set<string>()

/** Does the next walk of `target` look at its components all at once (its last walk found it closed)? For tests. */
export function walksAtOnce (target: string): boolean {
  return closedPaths.has(target)
}

/**
 * The lstat of every prefix of a closed `target` (closedPaths), made at once: the walk below checked them in turn,
 * one round trip of the thread pool each, on every arm and every revoke (issue 18). Each is handed out once (`take`),
 * to the walk's first look at that exact path, which it reaches only after every component above was checked and
 * found a directory; a path reached through a symlink, or looked at again (after a mkdir), is looked at afresh. So the
 * walk sees what it saw before, each lstat made a little earlier: only root or the daemon could have changed the path
 * meanwhile. A path that is not closed, or has `..`, is not looked at early.
 */
function lookedAtOnce (target: string): { take: (path: string) => Promise<Stats | null> | undefined } {
  const early = new Map<string, Promise<Stats | null>>()
  const parts = pathComponents(target)
  if (closedPaths.has(target) && !parts.includes('..')) {
    let p = '/'
    for (const c of parts) {
      p = join(p, c)
      const st = lstatOrNull(p)
      // Taken and awaited by the walk, or left when it stops early: a refusal must not be an unhandled rejection.
      st.catch(() => {})
      early.set(p, st)
    }
  }
  return {
    take: (path) => {
      const st = early.get(path)
      early.delete(path)
      return st
    }
  }
}

/**
 * Walk an absolute path from `/`, creating missing directories (0711) when `create` is set, and return its
 * symlink-free form. Every directory must be owned by root or the daemon and not writable by group or others
 * (sticky directories are accepted above the last component); a symlink is followed only when root or the
 * daemon owns it. Anything else throws NFS_ERR_UNSAFE_PATH; a missing path without `create` returns null.
 */
export async function resolveTrustedDir (target: string, create: boolean): Promise<string | null> {
  if (!isAbsolute(target)) throw unsafePath(target, 'the runs root must be an absolute path')
  const early = lookedAtOnce(target)
  const rootSt = await lstat('/')
  if (!isTrustedUid(rootSt.uid) || (rootSt.mode & 0o022) !== 0) throw unsafePath('/', 'the root directory is writable by others')
  // Closed until the walk finds otherwise (closedPaths).
  let closed = !pathComponents(target).includes('..')
  closedPaths.delete(target)
  // The walk is path-walk.ts's, shared with user-tree.ts; the checks of each component stay here, apart from that
  // file's: this side trusts root or the daemon (dirs and symlinks alike), makes dirs 0711 and throws coded errors,
  // while the child there trusts root or its user (symlinks root's only) and may not load the daemon's errors.
  const resolved = await walkComponents(target, {
    readlink,
    tooManySymlinks: () => unsafePath(target, 'too many symlinks'),
    visit: async (next, last) => {
      let st = await (early.take(next) ?? lstatOrNull(next))
      if (st === null) {
        closed = false
        if (!create) return 'missing'
        await mkdirWithMode(next, 0o711)
        st = await lstat(next)
      }
      if (st.isSymbolicLink()) {
        closed = false
        if (!isTrustedUid(st.uid)) throw unsafePath(next, `a symlink owned by uid ${st.uid}`)
        return 'symlink'
      }
      if (!st.isDirectory()) throw unsafePath(next, 'not a directory')
      if (!isTrustedUid(st.uid)) throw unsafePath(next, `owned by uid ${st.uid}, not root`)
      const writable = (st.mode & 0o022) !== 0
      if (writable && (last || (st.mode & S_ISVTX) === 0)) {
        throw unsafePath(next, 'writable by group or others')
      }
      if (writable) closed = false
      return 'dir'
    }
  })
  if (closed && resolved !== null) closedPaths.add(target)
  return resolved
}

/**
 * `<root>/<user>`: created by the daemon (0711 as root so users can reach their own run dir but not list
 * the others; 0700 in user mode), then checked: a real directory of the daemon's, not writable by others.
 */
export async function ensureUserDir (root: string, user: string, privileged: boolean, create: boolean): Promise<string | null> {
  const path = join(root, user)
  const mode = privileged ? 0o711 : 0o700
  // Looked at first, made only when missing: one round trip of the thread pool on every arm instead of two (issue 18).
  let st = await lstatOrNull(path)
  if (st === null && create) {
    await mkdirWithMode(path, mode)
    st = await lstatOrNull(path)
  }
  if (st === null) return null
  if (st.isSymbolicLink()) throw unsafePath(path, 'a symlink where the user directory should be')
  if (!st.isDirectory()) throw unsafePath(path, 'not a directory')
  if (st.uid !== process.geteuid?.()) throw unsafePath(path, `owned by uid ${st.uid}, not by the daemon`)
  if ((st.mode & 0o022) !== 0) throw unsafePath(path, 'writable by group or others')
  // A dir left 0700 by a daemon that trusted its umask (UMask=0077) locks the user out of their own run dirs.
  if (create && (st.mode & 0o777) !== mode) await chmodDirNoFollow(path, mode)
  return path
}

/**
 * mkdir, then the mode set explicitly: mkdir's mode is narrowed by the umask (the unit's UMask=0077 makes 0711
 * into 0700). An existing entry is left as it is (EEXIST is not an error); the caller checks what is there.
 */
async function mkdirWithMode (path: string, mode: number): Promise<void> {
  try {
    await mkdir(path, { mode })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return
    throw err
  }
  await chmodDirNoFollow(path, mode)
}

// fchmod through an O_NOFOLLOW|O_DIRECTORY fd: a symlink swapped in meanwhile is refused, never followed.
async function chmodDirNoFollow (path: string, mode: number): Promise<void> {
  const fh = await open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
  try {
    const st = await fh.stat()
    if (st.uid !== process.geteuid?.()) throw unsafePath(path, 'not created by the daemon')
    await fh.chmod(mode)
  } finally {
    await fh.close()
  }
}

/** Create the run dir, 0700; it must not exist (a retry removes the old one first: see `alreadyThere`). */
export async function makeRunDir (runDir: string): Promise<void> {
  try {
    await mkdir(runDir, { mode: 0o700 })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw nfsError('NFS_ERR_UNSAFE_PATH', [runDir, 'appeared while provisioning'], err)
    throw err
  }
}

/** Was makeRunDir refused because an entry was already at its path (and only for that)? */
export function alreadyThere (err: unknown): boolean {
  return isCoded(err, 'NFS_ERR_UNSAFE_PATH') && ((err as { cause?: NodeJS.ErrnoException }).cause?.code === 'EEXIST')
}
