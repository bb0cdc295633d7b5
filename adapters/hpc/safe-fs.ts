// Filesystem steps of the hpc target that stay safe when the daemon is root and users own the run dirs.
// Node has no openat()/mkdirat(), so safety comes from the shape of the tree instead:
//   - every component from / down to `<runsRoot>/<user>` is a directory (or a root-owned symlink) owned by
//     root or the daemon, that no other user can write (a sticky dir such as /tmp is fine above the root,
//     because a user can neither replace nor remove what root owns there): checked with lstat on each call;
//   - so the only directory a user ever controls is their run dir, and root touches nothing inside it after
//     handing it over: the store is created while the dir is still root's and 0700, with O_EXCL|O_NOFOLLOW,
//     and removal of the contents runs in a child with the dir owner's own uid and gid (SPEC 11: root only
//     touches root-owned directories). A run dir still the daemon's own (user mode, or a provision undone
//     before the hand-over) holding only plain entries is emptied in-process.
//   - a runs root in users' own trees (`{home}`, `{user}`) is worked on by a child as the user throughout:
//     per-user-root.ts and user-tree.ts.
import { constants } from 'node:fs'
import { link, lstat, mkdir, open, readdir, readlink, rmdir, unlink } from 'node:fs/promises'
import type { Stats } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { dirname, isAbsolute, join } from 'node:path'
import { nfsError } from '../../daemon/errors.js'
import type { CodedError } from '../../daemon/errors.js'
import { MARKER_NAME, parseRunMarker } from './marker.js'
import { runChild, type ChildResult } from '../../daemon/children/run-child.js'

export interface Owner { uid: number, gid: number }

const S_ISVTX = 0o1000
const MAX_SYMLINK_HOPS = 40
// The store's name while the run's intent is still being written: Nextflow never reads it, revoke removes it.
const STAGED_NAME = '.store.json.staged'
// A `find` over a run dir the user filled, as that user: the user can stop it, so it has a deadline. At the deadline
// it is killed and the revoke fails, to be retried with the revoker's backoff; `find -delete` keeps what it removed,
// so even a huge dir is emptied over a few attempts.
export const CLEANUP_DEADLINE_MS = 60_000

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
 * Walk an absolute path from `/`, creating missing directories (0711) when `create` is set, and return its
 * symlink-free form. Every directory must be owned by root or the daemon and not writable by group or others
 * (sticky directories are accepted above the last component); a symlink is followed only when root or the
 * daemon owns it. Anything else throws NFS_ERR_UNSAFE_PATH; a missing path without `create` returns null.
 */
export async function resolveTrustedDir (target: string, create: boolean): Promise<string | null> {
  if (!isAbsolute(target)) throw unsafePath(target, 'the runs root must be an absolute path')
  const rootSt = await lstat('/')
  if (!isTrustedUid(rootSt.uid) || (rootSt.mode & 0o022) !== 0) throw unsafePath('/', 'the root directory is writable by others')
  let pending = target.split('/').filter(c => c !== '' && c !== '.')
  let cur = '/'
  let hops = 0
  while (pending.length > 0) {
    const c = pending.shift()!
    if (c === '..') { cur = dirname(cur); continue }
    const next = join(cur, c)
    let st = await lstatOrNull(next)
    if (st === null) {
      if (!create) return null
      await mkdirWithMode(next, 0o711)
      st = await lstat(next)
    }
    if (st.isSymbolicLink()) {
      if (!isTrustedUid(st.uid)) throw unsafePath(next, `a symlink owned by uid ${st.uid}`)
      if (++hops > MAX_SYMLINK_HOPS) throw unsafePath(target, 'too many symlinks')
      const link = await readlink(next)
      if (link.startsWith('/')) cur = '/'
      pending = [...link.split('/').filter(p => p !== '' && p !== '.'), ...pending]
      continue
    }
    if (!st.isDirectory()) throw unsafePath(next, 'not a directory')
    if (!isTrustedUid(st.uid)) throw unsafePath(next, `owned by uid ${st.uid}, not root`)
    const writable = (st.mode & 0o022) !== 0
    if (writable && (pending.length === 0 || (st.mode & S_ISVTX) === 0)) {
      throw unsafePath(next, 'writable by group or others')
    }
    cur = next
  }
  return cur
}

/**
 * `<root>/<user>`: created by the daemon (0711 as root so users can reach their own run dir but not list
 * the others; 0700 in user mode), then checked: a real directory of the daemon's, not writable by others.
 */
export async function ensureUserDir (root: string, user: string, privileged: boolean, create: boolean): Promise<string | null> {
  const path = join(root, user)
  const mode = privileged ? 0o711 : 0o700
  if (create) await mkdirWithMode(path, mode)
  const st = await lstatOrNull(path)
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

/** Create the run dir, 0700; it must not exist (a retry removes the old one first). */
export async function makeRunDir (runDir: string): Promise<void> {
  try {
    await mkdir(runDir, { mode: 0o700 })
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw unsafePath(runDir, 'appeared while provisioning')
    throw err
  }
}

export { MARKER_NAME, parseRunMarker } from './marker.js'

/**
 * Mark a run dir just made by makeRunDir (still the daemon's, 0700) as this node's: `{"node","host"}`, 0644 (it
 * holds no secret), handed to `owner` with the dir. A runs root shared by several daemons is swept by each for
 * run dirs marked with its own node id only (readRunMarker).
 */
export async function writeRunMarker (runDir: string, nodeId: string, host: string, owner: Owner | null, rerun?: string, cluster?: string): Promise<void> {
  const fh = await open(join(runDir, MARKER_NAME), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644)
  try {
    // Together: two round trips of the thread pool become one, on the arm's path (issue 18).
    await Promise.all([fh.chmod(0o644), fh.writeFile(`${JSON.stringify({ node: nodeId, host, ...(cluster !== undefined ? { cluster } : {}), ...(rerun !== undefined ? { rerun } : {}) })}\n`)])
    if (owner !== null) await fh.chown(owner.uid, owner.gid)
  } finally {
    await fh.close()
  }
}

/** The node id a run dir is marked with; null when there is no readable plain marker (a dir from before markers). */
export async function readRunMarker (runDir: string): Promise<string | null> {
  const text = await readRunMarkerText(runDir)
  return text === null ? null : parseRunMarker(text)
}

/** The marker's whole text (at most 4 KiB), or null (none, or not a plain file). */
export async function readRunMarkerText (runDir: string): Promise<string | null> {
  let fh
  try {
    // O_NONBLOCK: a fifo planted under the marker's name must not hang the sweep.
    fh = await open(join(runDir, MARKER_NAME), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
  } catch {
    return null
  }
  try {
    const st = await fh.stat()
    if (!st.isFile() || st.size > 4096) return null
    return await fh.readFile('utf8')
  } catch {
    return null
  } finally {
    await fh.close()
  }
}

/**
 * Move `from` to `to` in a dir only the daemon can write to, refusing (EEXIST) when anything is at `to`: link(2) fails
 * on an existing entry, symlinks included, without following it. The runs root needs hard links, as every shared
 * filesystem a cluster runs on has (NFS, Lustre, GPFS, BeeGFS, CephFS); writeFileAtomic's noClobber needs them too.
 */
async function placeNoClobber (from: string, to: string): Promise<void> {
  await link(from, to)
  await unlink(from)
}

/**
 * Fill a run dir just made by makeRunDir with `store.json` (0600) holding `content`, then hand both to
 * `owner`: the file first, the directory last, so the user never owns a directory root still writes into.
 * The bytes go in under a staged name while `ready` (the write-ahead intent, see ProvisionOptions) is pending;
 * `store.json`, the path the run is given, appears only after it (placeNoClobber, in the dir still the daemon's own).
 * `content` is zeroed afterwards. On failure (`ready` rejecting too) the caller removes the run dir with removeRunDir.
 */
export async function writeStoreAndHandOver (runDir: string, content: Buffer, owner: Owner | null, ready?: Promise<void>, fileName = 'store.json'): Promise<string> {
  const dir = await stageStore(runDir, content, owner)
  try {
    return await placeStagedStore(dir, runDir, owner, ready, fileName)
  } finally {
    await dir.close()
  }
}

/**
 * writeStoreAndHandOver's first half: the bytes under the staged name in `stageDir` (a dir just made by makeRunDir,
 * checked to be the daemon's through the descriptor returned, which the caller closes). `content` is zeroed. The dir
 * may then be renamed (adapters/hpc.ts stages in the run dir before it gets its name, issue 18) before
 * placeStagedStore finishes in it under its new path.
 */
export async function stageStore (stageDir: string, content: Buffer, owner: Owner | null): Promise<FileHandle> {
  const staged = join(stageDir, STAGED_NAME)
  let dir: FileHandle
  try {
    dir = await open(stageDir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
  } catch (err) {
    content.fill(0)
    throw err
  }
  try {
    const dst = await dir.stat()
    if (dst.uid !== process.geteuid?.()) throw unsafePath(stageDir, 'not created by the daemon')
    await dir.chmod(0o700)
    const fh = await open(staged, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
    // No fsync of the file or the dir: the store only matters while its run lives, and a power cut ends the run
    // too (the ledger, which is durable, is what gets the dir removed afterwards). On NFS, close() flushes for
    // close-to-open consistency, which is what a compute node reading it needs.
    try {
      // The umask may have narrowed the mode; Nextflow wants exactly rw-------. Set beside the write (issue 18).
      await Promise.all([fh.chmod(0o600), fh.writeFile(content)])
      if (owner !== null) await fh.chown(owner.uid, owner.gid)
    } finally {
      await fh.close()
    }
    return dir
  } catch (err) {
    await dir.close()
    throw err
  } finally {
    content.fill(0)
  }
}

/**
 * writeStoreAndHandOver's second half, in `runDir` (the staged dir, `dir` its descriptor, under its final path):
 * once `ready` resolves, the staged file becomes `fileName`, then the dir is handed to `owner`.
 */
export async function placeStagedStore (dir: FileHandle, runDir: string, owner: Owner | null, ready: Promise<void> | undefined, fileName = 'store.json'): Promise<string> {
  const storePath = join(runDir, fileName)
  await ready
  // link(2), not rename(2): an entry already at store.json (nobody but the daemon can write here yet, so someone
  // interfered) fails it with EEXIST instead of being silently replaced.
  await placeNoClobber(join(runDir, STAGED_NAME), storePath)
  if (owner !== null) await dir.chown(owner.uid, owner.gid)
  return storePath
}

/** One `find` as `owner` (the daemon's own user when null), killed at the deadline. */
async function findAs (args: readonly string[], owner: Owner | null, deadlineMs: number): Promise<ChildResult> {
  const res = await runChild('find', args, { ...(owner !== null ? { uid: owner.uid, gid: owner.gid } : {}), deadlineMs, maxOutputBytes: 4096 })
  if (res.timedOut) throw Object.assign(new Error(`find did not finish within ${deadlineMs} ms; killed`), { code: 'ETIMEDOUT' })
  return res
}

/** Empty a directory as `owner`: never following a symlink, and restoring u+rwx on subdirs first. */
async function emptyDirAs (path: string, owner: Owner | null, deadlineMs: number): Promise<void> {
  // The user may have made a subdir (or the run dir) read-only; as its owner we may give it back.
  await findAs([path, '-type', 'd', '!', '-perm', '-700', '-exec', 'chmod', 'u+rwx', '{}', '+'], owner, deadlineMs)
  const res = await findAs([path, '-mindepth', '1', '-delete'], owner, deadlineMs)
  if (res.code !== 0) {
    const err = new Error(`find -delete exited ${String(res.code)}`) as Error & { stderr?: string }
    err.stderr = res.stderr.slice(0, 500)
    throw err
  }
}

/**
 * The fast path of removeRunDir: a run dir holding no directory is emptied with unlink(2) and removed here.
 * False (nothing lost, some entries may be gone) whenever anything is not plain: a subdir, an entry that
 * became one, a permission refusal, a file added meanwhile. The caller then does the full removal.
 */
async function removePlainEntries (runDir: string): Promise<boolean> {
  try {
    const entries = await readdir(runDir, { withFileTypes: true })
    if (entries.some(e => e.isDirectory())) return false
    for (const e of entries) await unlink(join(runDir, e.name)).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err })
    await rmdir(runDir)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' && (await lstatOrNull(runDir)) === null
  }
}

/**
 * Remove `<userDir>/<runId>` whatever its content. Returns false when there was nothing to remove.
 * `userDir` must come from ensureUserDir, so no user can swap the run dir entry while we look at it.
 * Contents beyond plain entries go with the credentials of the directory's owner; the now-empty entry is ours.
 */
export async function removeRunDir (runDir: string, privileged: boolean, deadlineMs = CLEANUP_DEADLINE_MS): Promise<boolean> {
  const st = await lstatOrNull(runDir)
  if (st === null) return false
  // unlink never follows a symlink: whatever it pointed at stays untouched.
  if (!st.isDirectory()) { await unlink(runDir); return true }
  const daemonUid = process.geteuid?.()
  let owner: Owner | null = null
  if (privileged && st.uid !== daemonUid) owner = { uid: st.uid, gid: st.gid }
  else if (privileged && (st.mode & 0o022) !== 0) throw unsafePath(runDir, 'a root-owned run directory writable by others')
  // Root does not work inside a directory a user owns (SPEC 11: on root-squashed storage it could not anyway): the
  // contents of a handed-over run dir go with its owner's credentials; only the daemon's own dirs take the fast path.
  if (owner === null && await removePlainEntries(runDir)) return true
  // A user still writing into their dir can make rmdir fail with ENOTEMPTY: empty it again, a few times.
  for (let attempt = 1; ; attempt++) {
    await emptyDirAs(runDir, owner, deadlineMs)
    try {
      await rmdir(runDir)
      return true
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return true
      if (code !== 'ENOTEMPTY' || attempt >= 3) throw err
    }
  }
}
