// The socket is private by construction (STYLE habit 7): its dir exists with the right mode before we listen, a live
// daemon's socket is never taken over, a stale one is replaced, and it is removed again on close.
import { connect } from 'node:net'
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises'
import { dirname } from 'node:path'
import { nfsError } from '../errors.js'
import type { Mode } from '../types.js'

/** Is something answering on this path? true: live; false: nothing there or a stale file. */
export function probeSocket (path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect(path)
    const done = (live: boolean): void => { clearTimeout(timer); sock.destroy(); resolve(live) }
    const timer = setTimeout(() => done(true), timeoutMs) // a wedged daemon still owns its socket
    sock.once('connect', () => done(true))
    sock.once('error', () => done(false))
  })
}

/**
 * Make the socket's dir (user mode 0700; system mode 0755, the socket itself is 0666 and callers are told apart
 * by their uid) and clear a stale socket. Throws NFS_ERR_SOCKET_IN_USE when a live daemon answers.
 */
export async function prepareSocketPath (path: string, mode: Mode): Promise<void> {
  const dir = dirname(path)
  const dirMode = mode === 'user' ? 0o700 : 0o755
  await mkdir(dir, { recursive: true, mode: dirMode })
  const st = await lstat(dir)
  if (!st.isDirectory()) throw nfsError('NFS_ERR_UNSAFE_PATH', [dir, 'the socket directory is not a directory'])
  if (st.uid !== process.getuid?.()) throw nfsError('NFS_ERR_UNSAFE_PATH', [dir, 'the socket directory belongs to another user'])
  if ((st.mode & 0o777) !== dirMode) await chmod(dir, dirMode)
  let existing
  try {
    existing = await lstat(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
    throw err
  }
  if (!existing.isSocket()) throw nfsError('NFS_ERR_UNSAFE_PATH', [path, 'exists and is not a socket'])
  if (await probeSocket(path)) throw nfsError('NFS_ERR_SOCKET_IN_USE', [path])
  await unlink(path)
}

export async function socketMode (path: string, mode: Mode): Promise<void> {
  await chmod(path, mode === 'user' ? 0o600 : 0o666)
}

export async function removeSocket (path: string): Promise<void> {
  try {
    const st = await lstat(path)
    if (st.isSocket()) await unlink(path)
  } catch {
    // already gone
  }
}
