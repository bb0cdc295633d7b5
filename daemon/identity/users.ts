// From a uid the kernel vouched for to a Caller: user name and every group, through NSS (so LDAP/sssd users
// resolve). Lookups are cached briefly: a login node may ask sssd thousands of times a minute otherwise.
// The lookups and the cache's clock are handed in (daemon.ts gives the addon's): tests give a table
// (test/helpers/nss.ts), so a route test needs neither root nor real accounts.
import { nfsError } from '../errors.js'
import type { Caller, Mode } from '../types.js'
import { native, type NativeAddon, type PeerCred, type PasswdEntry } from '../os/native.js'

/** The NSS lookups the directory makes: the native addon's in the daemon. */
export type NssLookups = Pick<NativeAddon, 'getpwuid' | 'getpwnam' | 'getgrgid' | 'getgrnam' | 'getgrouplist'>

export interface IdentityOptions {
  mode: Mode
  adminGroup: string
  /** the daemon's own uid: in user mode the only peer served */
  daemonUid: number
  cacheMs?: number
  /** where users and groups are looked up; the native addon (loaded on first use) when left out */
  nss?: NssLookups
  /** milliseconds since the epoch, for the cache */
  now?: () => number
}

interface Cached { at: number, user: PasswdEntry | null, groups: string[], gids: number[] }

export class UserDirectory {
  readonly #opts: Required<Omit<IdentityOptions, 'nss'>>
  readonly #nss: (() => NssLookups)
  readonly #byUid = new Map<number, Cached>()

  constructor (opts: IdentityOptions) {
    const { nss, ...rest } = opts
    this.#opts = { cacheMs: 30_000, now: Date.now, ...rest }
    this.#nss = nss === undefined ? native : () => nss
  }

  #lookup (uid: number): Cached {
    const now = this.#opts.now()
    const hit = this.#byUid.get(uid)
    if (hit !== undefined && now - hit.at < this.#opts.cacheMs) return hit
    const n = this.#nss()
    const user = n.getpwuid(uid)
    let gids: number[] = []
    let groups: string[] = []
    if (user !== null) {
      gids = [...new Set(n.getgrouplist(user.name, user.gid))]
      groups = gids.map(g => n.getgrgid(g)?.name ?? String(g))
    }
    const entry = { at: now, user, groups, gids }
    this.#byUid.set(uid, entry)
    return entry
  }

  /** The caller behind peer credentials. Throws NFS_ERR_PEER_REFUSED in user mode for any uid but ours. */
  callerFor (cred: PeerCred): Caller {
    if (this.#opts.mode === 'user' && cred.uid !== this.#opts.daemonUid) {
      throw nfsError('NFS_ERR_PEER_REFUSED', [this.#opts.daemonUid])
    }
    const { user, groups, gids } = this.#lookup(cred.uid)
    // A uid with no passwd entry (a container, a deleted account) is still identified, by number only.
    const name = user?.name ?? `uid:${cred.uid}`
    const isAdmin = this.#opts.mode === 'user' || cred.uid === 0 || groups.includes(this.#opts.adminGroup)
    return { user: name, uid: cred.uid, gid: user?.gid ?? cred.gid, pid: cred.pid, groups, gids, isAdmin }
  }

  /** A user by name, for member management and auto-runs; null when NSS does not know it. */
  userByName (name: string): PasswdEntry | null {
    return this.#nss().getpwnam(name)
  }

  userByUid (uid: number): PasswdEntry | null {
    return this.#lookup(uid).user
  }

  groupExists (name: string): boolean {
    return this.#nss().getgrnam(name) !== null
  }

  /** A Caller for a user the daemon acts for by itself (auto-runs), from NSS alone. */
  callerForUid (uid: number): Caller {
    const { user } = this.#lookup(uid)
    if (user === null) throw nfsError('NFS_ERR_UNKNOWN_USER', [`uid ${uid}`])
    return this.callerFor({ pid: 0, uid, gid: user.gid })
  }
}
