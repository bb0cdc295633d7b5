// The native addon (native/nfs_native.c): the libc calls Node lacks. Loaded once, lazily, from the package root.
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { packageRoot } from '../package-root.js'

export interface PeerCred { pid: number, uid: number, gid: number }
export interface PasswdEntry { name: string, uid: number, gid: number, home: string, shell: string }
export interface GroupEntry { name: string, gid: number, members: string[] }

export interface NativeAddon {
  peercred (fd: number): PeerCred
  getpwuid (uid: number): PasswdEntry | null
  getpwnam (name: string): PasswdEntry | null
  getgrgid (gid: number): GroupEntry | null
  getgrnam (name: string): GroupEntry | null
  getgrouplist (name: string, gid: number): number[]
  /** FD_CLOEXEC on one fd */
  cloexec (fd: number): void
  /** FD_CLOEXEC on every open fd >= lowFd */
  cloexecFrom (lowFd: number): void
  /** a non-blocking exclusive fcntl lock on the whole file behind `fd`: false when another process holds it */
  lockExclusive (fd: number): boolean
}

let addon: NativeAddon | undefined

export function native (): NativeAddon {
  if (addon === undefined) {
    const require = createRequire(import.meta.url)
    addon = require(join(packageRoot(), 'build', 'Release', 'nfs_native.node')) as NativeAddon
  }
  return addon
}
