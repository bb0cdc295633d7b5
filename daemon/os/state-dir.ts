// The state dir holds the store, the ledger, the audit log and (user mode) the key: 0700, ours, a real directory.
import { randomBytes } from 'node:crypto'
import { closeSync, constants, fchmodSync, fstatSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs'
import { chmod, lstat, mkdir, readFile, writeFile } from 'node:fs/promises'
import { isAbsolute, join, relative } from 'node:path'
import { nfsError } from '../errors.js'
import type { StatusWarning } from '../types.js'
import { isSharedFsType } from './fs-type.js'
import { native } from './native.js'

/**
 * Make the state dir and hold it to `mode`. 0700 unless the runs root lives inside it (system mode's default
 * <state>/runs): then 0711, search only, so a user's Nextflow can pass through to its own run dir while nobody
 * can list the dir and every file in it stays 0600.
 */
export async function ensureStateDir (dir: string, traversable = false): Promise<{ changed: boolean }> {
  const mode = traversable ? 0o711 : 0o700
  await mkdir(dir, { recursive: true, mode })
  const st = await lstat(dir)
  if (!st.isDirectory()) throw nfsError('NFS_ERR_UNSAFE_PATH', [dir, 'the state dir is not a directory'])
  if (st.uid !== process.getuid?.()) throw nfsError('NFS_ERR_UNSAFE_PATH', [dir, 'the state dir belongs to another user'])
  if ((st.mode & 0o777) !== mode) {
    await chmod(dir, mode)
    return { changed: true }
  }
  return { changed: false }
}

export function runsRootInside (stateDir: string, runsRoot: string): boolean {
  const rel = relative(stateDir, runsRoot)
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel)
}

export interface StateDirLock {
  /** the host of the daemon that held the state dir last (from the lock file), null when unknown */
  previousHost: string | null
  /** lets the lock go (the kernel does the same when the process dies, however it dies) */
  release (): void
}

const LOCK_NAME = 'lock'

/** The addon's fcntl lock; an addon built before it existed says how to rebuild instead of failing obscurely. */
export function nativeLockExclusive (fd: number): boolean {
  const addon = native()
  if (typeof addon.lockExclusive !== 'function') {
    throw new Error('the native addon (build/Release/nfs_native.node) predates lockExclusive: rebuild it with `npx node-gyp rebuild`')
  }
  return addon.lockExclusive(fd)
}

/** What the lock file says about its holder, for the refusal's message. Pure. */
export function describeHolder (text: string): string {
  const h = parseHolder(text)
  return h !== null ? `pid ${h.pid} on ${h.host}` : 'pid unknown'
}

function parseHolder (text: string): { pid: number, host: string } | null {
  try {
    const h = JSON.parse(text) as { pid?: unknown, host?: unknown }
    if (typeof h.pid === 'number' && typeof h.host === 'string') return { pid: h.pid, host: h.host }
  } catch {
    // a holder that has not written its line yet, or a file from something else
  }
  return null
}

/**
 * One daemon per state dir: an exclusive fcntl lock on `<dir>/lock`, taken before anything in the dir is read,
 * reconciled or changed (only a missing dir is made). fcntl locks, unlike a pid file, go away with their holder
 * however it dies, and reach the server on NFS, where a user-mode state dir in a shared home lives. The holder
 * writes `{"pid","host","since"}` into the file so a refused daemon can name it: NFS_ERR_STATE_IN_USE (exit 75).
 * The lock belongs to the open file description (OFD lock), so nothing else the process opens or closes drops it,
 * and the fd is close-on-exec, so no child inherits it.
 */
export async function lockStateDir (
  dir: string, host: string, lockExclusive: (fd: number) => boolean = nativeLockExclusive, mode = 0o700
): Promise<StateDirLock> {
  // A state dir made here gets `mode` (ensureStateDir's) set explicitly: mkdir's mode is narrowed by the umask.
  try {
    await mkdir(dir, { mode })
    await chmod(dir, mode)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      await mkdir(dir, { recursive: true, mode })
      await chmod(dir, mode)
    } else if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
  }
  const st = await lstat(dir)
  if (!st.isDirectory()) throw nfsError('NFS_ERR_UNSAFE_PATH', [dir, 'the state dir is not a directory'])
  if (st.uid !== process.getuid?.()) throw nfsError('NFS_ERR_UNSAFE_PATH', [dir, 'the state dir belongs to another user'])
  const path = join(dir, LOCK_NAME)
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600)
  let held = false
  let previousHost: string | null = null
  try {
    const fst = fstatSync(fd)
    if (!fst.isFile() || fst.uid !== process.getuid?.()) throw nfsError('NFS_ERR_UNSAFE_PATH', [path, 'the lock file is not a plain file of ours'])
    if (!lockExclusive(fd)) throw nfsError('NFS_ERR_STATE_IN_USE', [dir, describeHolder(readFileSync(fd, 'utf8'))])
    held = true
    previousHost = parseHolder(readFileSync(fd, 'utf8'))?.host ?? null
    fchmodSync(fd, 0o600)
    ftruncateSync(fd, 0)
    writeSync(fd, `${JSON.stringify({ pid: process.pid, host, since: new Date().toISOString() })}\n`, 0)
  } finally {
    if (!held) closeSync(fd)
  }
  let released = false
  return {
    previousHost,
    release () {
      if (released) return
      released = true
      closeSync(fd)
    }
  }
}

const NODE_ID_RE = /^[0-9a-f]{32}$/

/**
 * This state dir's node id: 32 random hex digits made at the first start and kept in `<state>/node-id` (0600).
 * The hpc target marks each run dir it makes with it, so that a runs root shared by several daemons (one per
 * node, each with its own state dir and ledger) is swept by each for its own leftovers only. One state dir is one
 * daemon (the lock), so the id names exactly the ledger that knows the run. Call it with the state-dir lock held.
 */
export async function ensureNodeId (dir: string): Promise<string> {
  const path = join(dir, 'node-id')
  try {
    const text = (await readFile(path, { encoding: 'utf8', flag: constants.O_RDONLY | constants.O_NOFOLLOW })).trim()
    if (NODE_ID_RE.test(text)) return text
    throw nfsError('NFS_ERR_UNSAFE_PATH', [path, 'the node id is not 32 hex digits'])
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  const id = randomBytes(16).toString('hex')
  await writeFile(path, `${id}\n`, { mode: 0o600, flag: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW })
  await chmod(path, 0o600)
  return id
}

// What `status` says about the state dir (pure; the facts are gathered at start).
export interface StateDirFacts {
  stateDir: string
  fsType: string | null
  /** the host of the daemon that held the state dir before this one, when it was another host */
  previousHost: string | null
  host: string
  /** system mode: a user-mode state dir in a shared home is shared by design, and the lock keeps it safe */
  system: boolean
}

export function stateDirWarnings (f: StateDirFacts): StatusWarning[] {
  const out: StatusWarning[] = []
  if (f.previousHost !== null && f.previousHost !== f.host) {
    out.push({
      code: 'NFS_WARN_STATE_DIR_OTHER_HOST',
      paths: [f.stateDir],
      message: `state dir ${f.stateDir} was last used by a daemon on ${f.previousHost}; two nodes taking turns on one state dir ` +
        'probe each other\'s runs with local checks: give each node its own state dir'
    })
  }
  if (f.system && f.fsType !== null && isSharedFsType(f.fsType)) {
    out.push({
      code: 'NFS_WARN_STATE_DIR_SHARED',
      paths: [f.stateDir],
      message: `state dir ${f.stateDir} is on ${f.fsType}, shared with other hosts; only one daemon can hold it at a time (the lock), ` +
        'so a daemon on another node sharing it will refuse to start'
    })
  }
  return out
}
