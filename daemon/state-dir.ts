// The state dir holds the store, the ledger, the audit log and (user mode) the key: 0700, ours, a real directory.
import { chmod, lstat, mkdir } from 'node:fs/promises'
import { isAbsolute, relative } from 'node:path'
import { nfsError } from './errors.js'

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
