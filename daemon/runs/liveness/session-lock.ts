// Is a Nextflow session's LevelDB LOCK held? Nextflow holds an fcntl lock on
// `<launchDir>/.nextflow/cache/<uuid>/db/LOCK` from Session.init to CacheDB.close, and the kernel drops it on
// any death, SIGKILL included. We never open the file, let alone lock it (a probe lock would make a starting
// or resuming Nextflow fail with "Unable to acquire lock"): we lstat it and look its device:inode up in
// /proc/locks, which also names the holder's pid.
// Given the run's uid, only that user's lock counts: every dir on the way and the LOCK itself must be the user's (or
// root's), walked through fds held open (no symlink, no swap between check and use), and the holder must be a process
// of the user. A group member who can write in a shared `.nextflow/cache` cannot keep someone's run "alive" by
// creating and locking a LOCK there.
import { constants, promises as fsp } from 'node:fs'
import { lstat, readFile, readdir, readlink, realpath } from 'node:fs/promises'
import { join } from 'node:path'
import { nfsError } from '../../errors.js'

export type LockKind = 'POSIX' | 'OFDLCK' | 'FLOCK'

export interface ProcLock {
  id: number
  kind: LockKind
  /** `->` lines are waiters blocked on the lock above them, not holders */
  blocked: boolean
  access: string
  /** null when the kernel prints -1 (OFD locks have no owning process) */
  pid: number | null
  major: number
  minor: number
  inode: bigint
}

export interface LockHolder {
  held: boolean
  pid: number | null
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
// fs/locks.c lock_get_status: "ID: [-> ]KIND MODE ACCESS PID MAJ:MIN:INODE START END", device numbers in
// hex (%02x, wider when needed), inode in decimal. Leases and `<none>` inodes do not match and are dropped.
const LINE_RE = /^(\d+):\s+(->\s+)?(POSIX|OFDLCK|FLOCK)\s+\S+\s+(\S+)\s+(-?\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/i

export function parseProcLocks (text: string): ProcLock[] {
  const out: ProcLock[] = []
  for (const line of text.split('\n')) {
    const m = LINE_RE.exec(line)
    if (m === null) continue
    const pid = Number(m[5])
    out.push({
      id: Number(m[1]),
      kind: (m[3] ?? '').toUpperCase() as LockKind,
      blocked: m[2] !== undefined,
      access: m[4] ?? '',
      pid: pid > 0 ? pid : null,
      major: parseInt(m[6] ?? '', 16),
      minor: parseInt(m[7] ?? '', 16),
      inode: BigInt(m[8] ?? '0')
    })
  }
  return out
}

/** glibc's gnu_dev_major/minor (32-bit masks): how userspace st_dev encodes the kernel's device number. */
export function splitDev (dev: bigint): { major: number, minor: number } {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & 0xfffff000n)
  const minor = (dev & 0xffn) | ((dev >> 12n) & 0xffffff00n)
  return { major: Number(major), minor: Number(minor) }
}

/** The holders of a device:inode among parsed /proc/locks entries (waiters excluded). */
export function findHolders (locks: ProcLock[], dev: bigint, inode: bigint): ProcLock[] {
  const { major, minor } = splitDev(dev)
  return locks.filter((l) => !l.blocked && l.inode === inode && l.major === major && l.minor === minor)
}

export function sessionLockPath (launchDir: string, sessionId: string): string {
  if (!UUID_RE.test(sessionId)) throw nfsError('NFS_ERR_BAD_REQUEST', ['session id is not a UUID'])
  return join(launchDir, '.nextflow', 'cache', sessionId, 'db', 'LOCK')
}

/**
 * Nothing under the launch dir is followed through a symlink: a planted link to another session's LOCK
 * would otherwise keep a finished run "alive". (The launch dir itself may sit behind a link, e.g. /home.) Each dir is
 * opened O_NOFOLLOW and the next name looked up through its fd; with `uid`, each must belong to that user or root.
 */
async function lstatNoLinks (launchDir: string, sessionId: string, uid?: number): Promise<{ dev: bigint, ino: bigint } | null> {
  const ownerOk = (st: { uid: bigint }): boolean => uid === undefined || st.uid === BigInt(uid) || st.uid === 0n
  const parts = ['.nextflow', 'cache', sessionId, 'db']
  let dir: fsp.FileHandle | null = null
  try {
    dir = await fsp.open(launchDir, constants.O_RDONLY | constants.O_DIRECTORY)
    for (const part of parts) {
      const next: fsp.FileHandle = await fsp.open(`/proc/self/fd/${dir.fd}/${part}`, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
      await dir.close()
      dir = next
      if (!ownerOk(await dir.stat({ bigint: true }))) return null
    }
    // The LOCK is never opened (see the top): looked at through the db dir's fd.
    const st = await lstat(`/proc/self/fd/${dir.fd}/LOCK`, { bigint: true })
    if (!st.isFile() || !ownerOk(st)) return null
    return { dev: st.dev, ino: st.ino }
  } catch {
    return null
  } finally {
    await dir?.close()
  }
}

/** The real and effective uids of a process, from /proc/PID/status; null when it is gone. */
export async function processUids (pid: number): Promise<number[] | null> {
  try {
    const m = /^Uid:\s+(\d+)\s+(\d+)/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'))
    return m === null ? null : [Number(m[1]), Number(m[2])]
  } catch {
    return null
  }
}

/**
 * Some filesystems (btrfs subvolumes) report an st_dev that differs from the superblock device in
 * /proc/locks. When the inode matches but the device does not, confirm through the holder's open files.
 */
async function holderHasOpen (pid: number, path: string): Promise<boolean> {
  let fds: string[]
  try {
    fds = await readdir(`/proc/${pid}/fd`)
  } catch {
    return false
  }
  for (const fd of fds) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')
    if (target === path) return true
  }
  return false
}

/**
 * Is the session's LOCK held? With `uid` (the run's user), only a LOCK of that user held by a process of that user
 * counts; a lock without a pid (an OFD lock: Nextflow takes POSIX ones) cannot be told apart and does not count.
 */
export async function sessionLockHolder (launchDir: string, sessionId: string, uid?: number): Promise<LockHolder> {
  if (!UUID_RE.test(sessionId)) return { held: false, pid: null }
  const st = await lstatNoLinks(launchDir, sessionId, uid)
  if (st === null) return { held: false, pid: null }
  const locks = parseProcLocks(await readFile('/proc/locks', 'utf8'))
  const byUser = async (l: ProcLock): Promise<boolean> => uid === undefined || (l.pid !== null && (await processUids(l.pid))?.includes(uid) === true)
  for (const l of findHolders(locks, st.dev, st.ino)) {
    if (await byUser(l)) return { held: true, pid: l.pid }
  }
  const candidates = locks.filter((l) => !l.blocked && l.inode === st.ino && l.pid !== null)
  if (candidates.length > 0) {
    // /proc/PID/fd links show the canonical path
    const canonical = sessionLockPath(await realpath(launchDir).catch(() => launchDir), sessionId)
    for (const l of candidates) {
      if (await byUser(l) && await holderHasOpen(l.pid as number, canonical)) return { held: true, pid: l.pid }
    }
  }
  return { held: false, pid: null }
}
