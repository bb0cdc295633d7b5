// The native addon (native/nfs_native.c): the libc calls Node lacks. Loaded once, from the package root, by
// node-gyp-build: a local compile (build/Release) when there is one, else the prebuilt binary for this platform
// (prebuilds/linux-x64, prebuilds/linux-arm64; glibc). A missing or unloadable addon is NFS_ERR_ADDON naming the
// file and the fix, never a later "permission denied": the daemon loads it before it reads anything.
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { nfsError } from '../errors.js'
import { packageRoot } from './package-root.js'

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

const require = createRequire(import.meta.url)
const FIX = 'reinstall nf-secretsd, or run `npm rebuild nf-secretsd` where it is installed (`npm install` in a clone); ' +
  'compiling needs a C compiler and Node\'s headers, see docs/install.md'

let addon: NativeAddon | undefined

/** The addon file node-gyp-build picks for this platform, or a coded error saying none fits. */
export function addonFile (root = packageRoot()): string {
  const nodeGypBuild = require('node-gyp-build') as { resolve: (dir: string) => string }
  try {
    return nodeGypBuild.resolve(root)
  } catch {
    const where = `${join(root, 'build', 'Release')} or ${join(root, 'prebuilds', `${process.platform}-${process.arch}`)}`
    throw nfsError('NFS_ERR_ADDON', [where, `no build for ${process.platform}-${process.arch} is there; ${FIX}`])
  }
}

/** Load the addon from `root` (the package root); throws NFS_ERR_ADDON when it cannot. */
export function loadNative (root = packageRoot()): NativeAddon {
  const file = addonFile(root)
  try {
    return require(file) as NativeAddon
  } catch (err) {
    throw nfsError('NFS_ERR_ADDON', [file, `${(err as Error).message.split('\n')[0]}; ${FIX}`])
  }
}

export function native (): NativeAddon {
  if (addon === undefined) addon = loadNative()
  return addon
}
