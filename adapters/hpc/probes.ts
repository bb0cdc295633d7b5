// Filesystem facts about the runs root for `status` (status-warnings.ts judges them).
import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { link, open, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * Does link(2) work in `dir`? A scratch file and a link to it, both removed again. null when the probe itself could
 * not run (no write access: a user's tree the daemon does not write as root).
 */
export async function probeHardLinks (dir: string): Promise<boolean | null> {
  const a = join(dir, `.nfs-link-probe-${process.pid}-${randomBytes(6).toString('hex')}`)
  const b = `${a}.link`
  try {
    await (await open(a, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)).close()
  } catch {
    return null
  }
  try {
    await link(a, b)
    await unlink(b)
    return true
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EMLINK' ? false : null
  } finally {
    await unlink(a).catch(() => {})
  }
}

/** The directories from `/` down to `path` (resolved, symlink-free) that others cannot search (no o+x). */
export async function closedComponents (path: string): Promise<string[]> {
  const out: string[] = []
  let cur = '/'
  for (const c of ['', ...path.split('/').filter(Boolean)]) {
    cur = c === '' ? '/' : join(cur, c)
    const st = await stat(cur).catch(() => null)
    if (st !== null && (st.mode & 0o001) === 0) out.push(cur)
  }
  return out
}
