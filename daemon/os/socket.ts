// The socket is private by construction (STYLE habit 7): its dir exists with the right mode before we listen, a live
// daemon's socket is never taken over, a stale one is replaced, and it is removed again on close.
import { connect } from 'node:net'
import { chmod, link, lstat, mkdir, readdir, unlink } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
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
  // A start killed between bind and link (listenInPlace) leaves its temporary socket; a later start has another pid.
  const stale = `.${basename(path)}.`
  for (const name of await readdir(dir)) {
    if (name.startsWith(stale) && name.endsWith('.new')) await removeSocket(join(dir, name))
  }
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

/**
 * Listen so that `path` is never seen with another mode than its own: the socket is bound under a temporary name in
 * the same dir with umask 0177 (private from its first instant), given its mode, and only then linked at `path`
 * (link, not rename: a socket someone made at `path` meanwhile is not replaced, it fails as listen would). Before, a
 * system daemon's socket sat at 0600 between listen and chmod: other users were refused for that moment, while
 * root's health check already got through (a clean CI run saw 0600 after /health answered).
 */
export async function listenInPlace (path: string, mode: Mode, listen: (at: string) => Promise<void>): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.new`)
  await removeSocket(temp)
  const old = process.umask(0o177)
  try {
    await listen(temp)
  } finally {
    process.umask(old)
  }
  try {
    await socketMode(temp, mode)
    await link(temp, path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw nfsError('NFS_ERR_SOCKET_IN_USE', [path])
    throw err
  } finally {
    await removeSocket(temp)
  }
}

export async function removeSocket (path: string): Promise<void> {
  try {
    const st = await lstat(path)
    if (st.isSocket()) await unlink(path)
  } catch {
    // already gone
  }
}
