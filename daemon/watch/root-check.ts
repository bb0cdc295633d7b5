// What a poller checks of a watch root's path before it claims it, before each walk and at each look while it polls
// it (cluster/watch-roots.ts): the checks `watch add` made (watch-service.ts, #resolveRoot), again, because the path
// may have changed since, and in a cluster it is read by another node than the one that checked it. The walk and the
// watches of a user's root run as root: a component swapped for a symlink (by the user, or by anyone who can write a
// parent) would take them into a dir that user cannot read, and its histories would become runs of theirs.
import type { Stats } from 'node:fs'
import { lstat } from 'node:fs/promises'
import { dirname } from 'node:path'
import type { RootRefusal } from '../store/watch-roots.js'

/** lstat, or null when the path is not there (not mounted on this node, removed) or cannot be read. */
async function lstatOrNull (path: string, fs: { lstat: (p: string) => Promise<Stats> }): Promise<Stats | null> {
  try {
    return await fs.lstat(path)
  } catch {
    return null
  }
}

/**
 * Refuse a root whose path holds a symlink anywhere (the root was added as its canonical path, so one there now is a
 * change), or (with `owner`) whose dir is not that user's; a root not there is only not seen (not mounted here).
 */
export async function checkRootPath (root: string, owner: number | null, fs: { lstat: (p: string) => Promise<Stats> } = { lstat }): Promise<RootRefusal | null> {
  const st = await lstatOrNull(root, fs)
  if (st === null) return { reason: 'not found on this node', unsafe: false }
  if (st.isSymbolicLink()) return { reason: 'the root is a symlink now', unsafe: true }
  if (!st.isDirectory()) return { reason: 'not a directory', unsafe: false }
  if (owner !== null && st.uid !== owner) return { reason: 'the root belongs to another user now', unsafe: true }
  for (let p = dirname(root); ; p = dirname(p)) {
    const parent = await lstatOrNull(p, fs)
    if (parent === null) return { reason: 'not found on this node', unsafe: false }
    if (parent.isSymbolicLink()) return { reason: 'a component of its path is a symlink now', unsafe: true }
    if (p === dirname(p)) return null
  }
}
