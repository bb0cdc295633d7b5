// Which filesystem a path lives on, from /proc/self/mountinfo. Grid tasks on compute nodes read the run's
// `.nf-<hash>.secrets` file, so the hpc target's runs root must sit on storage they share; `status` warns otherwise,
// and of a state dir on shared storage too (state-dir.ts). OS plumbing: the target and the daemon both ask.
// Parsing is pure so it can be tested with a table; only readMountFsType touches /proc.
import { readFile } from 'node:fs/promises'

export interface MountEntry {
  mountPoint: string
  fsType: string
}

// Filesystem types that compute nodes can share with the login node. FUSE mounts report `fuse.<name>`.
const SHARED_FS_TYPES = new Set([
  'nfs', 'nfs4', 'lustre', 'gpfs', 'beegfs', 'cephfs', 'ceph', 'glusterfs', 'gfs2', 'ocfs2', 'panfs',
  'wekafs', 'orangefs', 'pvfs2', 'afs', 'openafs', 'cifs', 'smb3', 'smbfs', 'ceph-fuse', 'juicefs',
  'moosefs', 'mfs', 'quobyte', 'vastfs', 'dvs', 'xtreemfs', 'sshfs', 'lizardfs', 'alluxio'
])

export function isSharedFsType (type: string): boolean {
  const t = type.trim().toLowerCase()
  if (SHARED_FS_TYPES.has(t)) return true
  if (t.startsWith('fuse.')) return SHARED_FS_TYPES.has(t.slice(5))
  return false
}

// mountinfo escapes space, tab, newline and backslash in paths as 3-digit octal (\040 and so on).
function unescapeMountPath (s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)))
}

/** Lines of /proc/self/mountinfo: field 5 is the mount point, the first field after " - " the fs type. */
export function parseMountinfo (text: string): MountEntry[] {
  const out: MountEntry[] = []
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ')
    if (sep < 0) continue
    const left = line.slice(0, sep).split(' ')
    const right = line.slice(sep + 3).split(' ')
    const mountPoint = left[4]
    const fsType = right[0]
    if (mountPoint === undefined || fsType === undefined || fsType === '') continue
    out.push({ mountPoint: unescapeMountPath(mountPoint), fsType })
  }
  return out
}

/**
 * The fs type of the mount holding an absolute, already resolved path: the longest mount point that is a
 * prefix on a component boundary. Later lines win on ties because a later mount hides an earlier one.
 */
export function fsTypeOf (path: string, mounts: readonly MountEntry[]): string | null {
  let best: MountEntry | null = null
  for (const m of mounts) {
    const mp = m.mountPoint
    const covers = mp === '/' || path === mp || path.startsWith(mp.endsWith('/') ? mp : mp + '/')
    if (covers && (best === null || mp.length >= best.mountPoint.length)) best = m
  }
  return best?.fsType ?? null
}

export async function readMountFsType (path: string): Promise<string | null> {
  try {
    return fsTypeOf(path, parseMountinfo(await readFile('/proc/self/mountinfo', 'utf8')))
  } catch {
    return null
  }
}
