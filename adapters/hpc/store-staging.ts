// A run's store placed in its run dir: the bytes staged under a name Nextflow never reads while the run's intent is
// written, then placed under `store.json` without clobbering anything, and the dir handed to its user last.
import { constants } from 'node:fs'
import { link, open, unlink } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { unsafePath, type Owner } from './trusted-dirs.js'

// The store's name while the run's intent is still being written: Nextflow never reads it, revoke removes it.
const STAGED_NAME = '.store.json.staged'

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
    // Always set, even when the mode bits already say 0700 (skipping it was tried for issue 18): on a filesystem with
    // NFSv4 ACLs (GPFS, NFSv4, ZFS) chmod rewrites the ACL, and it is what strips ACEs the dir inherited from above
    // before the store is created in it. The mode bits do not show a named user's ACE.
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
