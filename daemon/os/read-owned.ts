// Reading the few files of a launch dir that belong to a user, as root, safely:
// - the dir holding the file is opened first (O_DIRECTORY|O_NOFOLLOW) and checked by its fd, and the file is opened
//   through that fd (`/proc/self/fd/N/name`, O_NOFOLLOW): a `.nextflow` swapped for a symlink between the check and
//   the read cannot redirect root's read;
// - only a regular file of that user (or root) counts;
// - a large file gives its head (identity, pid) and tail (the end), never more than head + TAIL_BYTES;
// - `trusted` says whether anyone but the owner (and root) could have written it: the file or its dir writable by
//   others, or by a group anyone else is in, or a second hard link. A group member of a shared project dir can append
//   to such a file; the callers take no end or start from it on its word alone (docs/security.md).
// The watcher and the run monitor both read through here.
import { constants, promises as fsp, type BigIntStats, type Stats } from 'node:fs'
import { basename, dirname } from 'node:path'
import { native } from './native.js'

export const HEAD_BYTES = 256 * 1024
export const TAIL_BYTES = 64 * 1024

export interface OwnedText {
  text: string
  mtimeMs: number
  /** bytes left out before `text` (a tail read) */
  skipped: number
  /** no one but the owner (and root) could have written this file (see writableByOthers) */
  trusted: boolean
}

const PRIVATE_GROUP_MS = 30_000
const privateGroups = new Map<string, { at: number, ok: boolean }>()

/**
 * Is `gid` a group only `uid` is in: that user's own primary group, named like the user, with no other member (the
 * user-private-group scheme behind a umask of 002)? As Debian's OpenSSH decides for group-writable files, short of
 * listing every account. Cached briefly (NSS may be sssd).
 */
export function privateGroupOf (uid: number, gid: number): boolean {
  if (uid === 0) return gid === 0
  const key = `${uid}:${gid}`
  const hit = privateGroups.get(key)
  if (hit !== undefined && Date.now() - hit.at < PRIVATE_GROUP_MS) return hit.ok
  let ok = false
  try {
    const pw = native().getpwuid(uid)
    const gr = native().getgrgid(gid)
    ok = pw !== null && gr !== null && pw.gid === gid && gr.name === pw.name && gr.members.every(m => m === pw.name)
  } catch {
    ok = false
  }
  if (privateGroups.size > 10_000) privateGroups.clear()
  privateGroups.set(key, { at: Date.now(), ok })
  return ok
}

/** Could anyone but `uid` (and root) write through these permissions? Pure but for the group lookup. */
export function writableByOthers (st: Pick<Stats, 'mode' | 'gid'>, uid: number, privateGroup = privateGroupOf): boolean {
  if ((st.mode & 0o002) !== 0) return true
  return (st.mode & 0o020) !== 0 && !privateGroup(uid, st.gid)
}

/**
 * May anyone but `uid` replace or rename entries of this dir? A sticky dir (`/tmp`) lets no one touch another's
 * entries, and a name someone else creates there is theirs, which the owner check refuses.
 */
export function dirWritableByOthers (st: Pick<Stats, 'mode' | 'gid'>, uid: number, privateGroup = privateGroupOf): boolean {
  return (st.mode & 0o1000) === 0 && writableByOthers(st, uid, privateGroup)
}

/** Open a directory without following a symlink in its last component; null when it is not one. */
export async function openDir (path: string): Promise<fsp.FileHandle | null> {
  try {
    return await fsp.open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
  } catch {
    return null
  }
}

/** The path of `name` inside a directory held open: the kernel resolves the fd, not the dir's path again. */
export function atFd (dir: fsp.FileHandle, name: string): string {
  return `/proc/self/fd/${dir.fd}/${name}`
}

/**
 * May anyone but `uid` write in the dir held by `dir`? null when it is not a dir, or (`owned`) not one of `uid`'s or
 * root's. A launch dir may be anyone's (a PI's project dir); `.nextflow` must be the user's.
 */
async function dirState (dir: fsp.FileHandle, uid: number, owned: boolean): Promise<{ sharedWritable: boolean } | null> {
  const st = await dir.stat()
  if (!st.isDirectory() || (owned && st.uid !== uid && st.uid !== 0)) return null
  return { sharedWritable: dirWritableByOthers(st, uid) }
}

export interface ReadOptions {
  /** how much of a large file's start to read (0: only its tail) */
  head?: number
  tail?: number
  /** the dir must be `uid`'s or root's */
  dirOwned?: boolean
}

/**
 * Read `name` in the dir held by `dir`, a file of `uid` (or root). The file is opened O_NONBLOCK so a FIFO planted
 * there cannot hang the read.
 */
export async function readOwnedAt (dir: fsp.FileHandle, name: string, uid: number, opts: ReadOptions = {}): Promise<OwnedText | null> {
  const head = opts.head ?? HEAD_BYTES
  const tail = opts.tail ?? TAIL_BYTES
  let ds
  try {
    ds = await dirState(dir, uid, opts.dirOwned ?? false)
  } catch {
    return null
  }
  if (ds === null) return null
  let fh
  try {
    fh = await fsp.open(atFd(dir, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch {
    return null
  }
  try {
    const st = await fh.stat()
    if (!st.isFile() || (st.uid !== uid && st.uid !== 0)) return null
    const trusted = !ds.sharedWritable && !writableByOthers(st, uid) && st.nlink === 1
    if (st.size <= head + tail) {
      const buf = Buffer.alloc(st.size)
      const { bytesRead } = await fh.read(buf, 0, st.size, 0)
      return { text: buf.subarray(0, bytesRead).toString('utf8'), mtimeMs: st.mtimeMs, skipped: 0, trusted }
    }
    const b = Buffer.alloc(tail)
    const { bytesRead } = await fh.read(b, 0, tail, st.size - tail)
    const end = b.subarray(0, bytesRead).toString('utf8')
    if (head === 0) return { text: end, mtimeMs: st.mtimeMs, skipped: st.size - tail, trusted }
    const a = Buffer.alloc(head)
    await fh.read(a, 0, head, 0)
    return { text: `${a.toString('utf8')}\n${end}`, mtimeMs: st.mtimeMs, skipped: st.size - tail - head, trusted }
  } catch {
    return null
  } finally {
    await fh.close()
  }
}

/** Read `path` (its dir opened without following its last component, then the file through that fd). */
export async function readOwned (path: string, uid: number, opts: ReadOptions = {}): Promise<OwnedText | null> {
  const dir = await openDir(dirname(path))
  if (dir === null) return null
  try {
    return await readOwnedAt(dir, basename(path), uid, opts)
  } finally {
    await dir.close()
  }
}

/** dev and ino of a stat, for comparing what a path names now with what an fd holds. */
export function sameFile (a: Pick<BigIntStats | Stats, 'dev' | 'ino'>, b: Pick<BigIntStats | Stats, 'dev' | 'ino'>): boolean {
  return a.dev === b.dev && a.ino === b.ino
}
