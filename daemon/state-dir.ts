// The state dir holds the store, the ledger, the audit log and (user mode) the key: 0700, ours, a real directory.
import { chmod, lstat, mkdir } from 'node:fs/promises'
import { nfsError } from './errors.js'

export async function ensureStateDir (dir: string): Promise<{ tightened: boolean }> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const st = await lstat(dir)
  if (!st.isDirectory()) throw nfsError('NFS_ERR_UNSAFE_PATH', [dir, 'the state dir is not a directory'])
  if (st.uid !== process.getuid?.()) throw nfsError('NFS_ERR_UNSAFE_PATH', [dir, 'the state dir belongs to another user'])
  if ((st.mode & 0o077) !== 0) {
    await chmod(dir, 0o700)
    return { tightened: true }
  }
  return { tightened: false }
}
