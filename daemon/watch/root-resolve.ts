// The path a `watch add` names, resolved once and checked as what will be watched (issue 13, the `watch add` race):
// the caller's own dir (or any, for an admin), with no symlink in its canonical path. The walks that follow open it
// again from `/`, one component at a time (held-root.ts), so a path changed after this check is refused there too.
import { lstat, realpath } from 'node:fs/promises'
import { resolve } from 'node:path'
import { isCoded, nfsError } from '../errors.js'
import { openDir, sameFile } from '../os/read-owned.js'
import type { Caller } from '../types.js'

/**
 * The dir a request names, resolved once and checked as what will be watched: the canonical path is opened
 * (O_DIRECTORY|O_NOFOLLOW) and its owner checked on the fd; then no component of that path may be a symlink and
 * the path must still name the dir held. A symlink swapped in anywhere between the steps is refused, never followed
 * into someone else's dir (issue 13, the `watch add` race).
 */
export async function resolveRoot (caller: Caller, requested: string): Promise<string> {
  const shown = JSON.stringify(requested.slice(0, 200))
  let root: string
  try {
    root = await realpath(requested)
  } catch {
    throw nfsError('NFS_ERR_INVALID_PATH', [`${shown}: no such directory`])
  }
  const fh = await openDir(root)
  if (fh === null) throw nfsError('NFS_ERR_INVALID_PATH', [`${shown}: not a directory (symlinks are not followed)`])
  try {
    const held = await fh.stat()
    if (!caller.isAdmin && held.uid !== caller.uid) throw nfsError('NFS_ERR_FORBIDDEN', [`${root} is not yours to watch`])
    for (let p = root; ; p = resolve(p, '..')) {
      if ((await lstat(p)).isSymbolicLink()) throw nfsError('NFS_ERR_UNSAFE_PATH', [`${root}: a component changed into a symlink while it was checked`])
      if (p === '/') break
    }
    if (!sameFile(await lstat(root), held)) throw nfsError('NFS_ERR_UNSAFE_PATH', [`${root}: changed while it was checked`])
  } catch (err) {
    if (isCoded(err)) throw err
    throw nfsError('NFS_ERR_INVALID_PATH', [`${shown}: changed while it was checked`])
  } finally {
    await fh.close()
  }
  return root
}
