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
// The trusted dirs are checked and made in trusted-dirs.ts, the store is placed by store-staging.ts; here: the run
// dir's marker, and the removal of a run dir.
import { constants } from 'node:fs'
import { open, readdir, rmdir, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { MARKER_NAME, parseRunMarker } from './marker.js'
import { runChild, type ChildResult } from '../../daemon/children/run-child.js'
import { lstatOrNull, unsafePath, type Owner } from './trusted-dirs.js'

// A `find` over a run dir the user filled, as that user: the user can stop it, so it has a deadline. At the deadline
// it is killed and the revoke fails, to be retried with the revoker's backoff; `find -delete` keeps what it removed,
// so even a huge dir is emptied over a few attempts.
export const CLEANUP_DEADLINE_MS = 60_000

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
