// Which roots this node walks and watches, and how (the watch room's roots; watch-service.ts is its face): each root
// known (the config's, the API's, in a cluster the shared ones) and, of those, the ones this node walks; a walk opens
// the root as held-root.ts does (check and use are one) and hands it to the watcher with the options its owner gets
// (a user's dir budget and polling pace; the guard of an API root). A root whose path fails the checks of `watch add`
// is not walked, or stops being watched at once, and is listed as refused with the reason; a single node looks again
// at those every rootRecheckMs and walks them once they pass (a cluster node's claims look every second instead).
import { realpath } from 'node:fs/promises'
import { resolve, sep } from 'node:path'
import type { Config, WatchRoot } from '../config.js'
import type { UserDirectory } from '../identity/users.js'
import type { Logger } from '../logger.js'
import { realTimers, type TimerHandle, type Timers } from '../os/timers.js'
import type { RootRefusal, StoredWatch, WatchRoots } from '../store/watch-roots.js'
import { openRoot } from './held-root.js'
import { checkRootPath } from './root-check.js'
import { skippedName } from './walk.js'
import type { GroupOptions } from './watch-group.js'
import type { RunDirWatcher } from './watcher.js'

export interface Root {
  root: string
  depth: number
  workspace: string | null
  targets: string[]
  poll: boolean
  intervalMs: number
  source: 'config' | 'api'
  owner: string
  uid: number
}

/** A root of the API as the store keeps it. Pure. */
export function fromStored (w: StoredWatch): Root {
  return { root: w.root, depth: w.depth, workspace: w.workspace, targets: w.targets, poll: w.poll, intervalMs: w.intervalMs, source: 'api', owner: w.user, uid: w.uid }
}

export interface RootWalksDeps {
  config: Config
  users: UserDirectory
  logger: Logger
  store: WatchRoots
  watcher: RunDirWatcher
  /** walk only once startWalks() is called */
  deferWalks?: boolean
  rootRecheckMs?: number
  timers?: Timers
  /** a walk ended (walked, refused or failed): runs in its dirs were watched on their own meanwhile */
  afterWalk: () => void
}

export class RootWalks {
  readonly roots = new Map<string, Root>()
  /** the roots this node walks and watches (in a cluster, the others are polled by another node) */
  readonly active = new Set<string>()
  /** roots whose first walk is still going (the daemon serves meanwhile) */
  readonly walking = new Map<string, Promise<void>>()
  /** roots of the API this node was to walk and did not: their path failed the checks of `watch add` (root-check.ts) */
  readonly refused = new Map<string, string>()
  readonly #deps: RootWalksDeps
  readonly #log: Logger
  readonly #store: WatchRoots
  readonly #watcher: RunDirWatcher
  readonly #afterWalk: () => void
  /** resolved once walks may begin (at once, or at startWalks) */
  readonly #mayWalk: Promise<void>
  #letWalk: () => void = () => {}
  #recheckTimer: TimerHandle | undefined
  #stopped = false

  constructor (deps: RootWalksDeps) {
    this.#deps = deps
    this.#log = deps.logger
    this.#store = deps.store
    this.#watcher = deps.watcher
    this.#afterWalk = deps.afterWalk
    this.#mayWalk = deps.deferWalks === true ? new Promise(resolve => { this.#letWalk = resolve }) : Promise.resolve()
  }

  /** Let the walks begin (deferWalks): see DirWatchService.startWalks. */
  startWalks (): void {
    this.#letWalk()
  }

  scheduleRecheck (): void {
    if (this.#stopped) return
    const timers = this.#deps.timers ?? realTimers
    this.#recheckTimer = timers.setTimeout(() => {
      void this.recheckRefused().catch((err: unknown) => { this.#log.error({ err }, 'looking again at the roots not walked failed') })
        .finally(() => { this.scheduleRecheck() })
    }, this.#deps.rootRecheckMs ?? 30_000)
    this.#recheckTimer.unref()
  }

  /**
   * A single node: walk again each root it stopped or did not walk (its path failed the checks of `watch add`: a
   * symlink swapped in, not there yet) once its path passes them. Without this it waited for the next start.
   */
  async recheckRefused (): Promise<void> {
    for (const root of [...this.refused.keys()]) {
      const r = this.roots.get(root)
      if (r === undefined || !this.active.has(root) || this.walking.has(root) || this.#stopped) continue
      if (await this.judge(r) !== null) continue
      this.#log.info({ root }, 'a watch root not walked passes the checks of watch add now: walking it again')
      await this.#watcher.removeGroup(`root:${root}`)
      this.active.delete(root)
      void this.ensureStarted(r)
    }
  }

  async fromConfig (w: WatchRoot): Promise<Root> {
    // Canonical paths: a run's launch dir comes from the CLI's getcwd(), which is physical.
    const root = await realpath(w.root).catch(() => resolve(w.root))
    return { root, depth: w.depth, workspace: w.workspace ?? null, targets: [...(w.targets ?? [])], poll: w.poll, intervalMs: w.intervalMs, source: 'config', owner: 'config', uid: 0 }
  }

  /** A root of the config or of an admin: makes auto-runs for any launch dir's owner and is not limited. */
  adminRoot (r: Root): boolean {
    if (r.source === 'config' || r.uid === 0) return true
    try {
      return this.#deps.users.callerForUid(r.uid).isAdmin
    } catch {
      return false
    }
  }

  /** How a root is watched: a user's walks only their own dirs, within their dir budget, polled no faster than allowed. */
  groupOptions (r: Root): GroupOptions {
    // Anything new under an API root is reached by path only while the path is still the dir that was added.
    const guard = r.source === 'api' ? { guard: async () => await this.#stillSafe(r) } : {}
    if (this.adminRoot(r)) return { poll: r.poll, intervalMs: r.intervalMs, ...guard }
    const limits = this.#deps.config.limits
    return {
      ...guard,
      poll: r.poll,
      // a root stored before the limit was set (or lowered) is polled at the allowed pace, not refused
      intervalMs: Math.max(r.intervalMs, limits.minPollIntervalMs),
      budget: { key: `uid:${r.uid}`, limit: limits.watchedDirsPerUser, owner: r.uid }
    }
  }

  /**
   * May this node walk and watch the root's path now? The checks `watch add` made, again (the path may have changed
   * since, or be another node's view): no symlink in it, and a user's root still that user's dir (root-check.ts).
   * A root of the config is the admin's own definition on this node: not checked.
   */
  async judge (r: Root): Promise<RootRefusal | null> {
    if (r.source !== 'api') return null
    return await checkRootPath(r.root, this.adminRoot(r) ? null : r.uid)
  }

  /**
   * The watcher's guard for a root it watches: a path that turned unsafe stops the root at once (its watches go; it
   * stays listed as not walked, and in a cluster the node's next look gives it up). A path not seen is the watcher's
   * own business (its dirs' events), and the cluster's look releases it after a while.
   */
  async #stillSafe (r: Root): Promise<boolean> {
    const why = await this.judge(r)
    if (why === null || !why.unsafe) return true
    if (!this.refused.has(r.root) && this.active.has(r.root)) {
      this.refused.set(r.root, why.reason)
      this.#log.warn({ root: r.root, reason: why.reason }, 'stopped watching a watch root: its path fails the checks of watch add')
      // Not awaited: the watcher asks from inside its own handlers; the group is gone from its map at once.
      void this.#watcher.removeGroup(`root:${r.root}`)
    }
    return false
  }

  /** Know a root, and watch it if this node is the one to poll it. */
  track (r: Root): void {
    this.roots.set(r.root, r)
    if (this.#store.mine(r.root)) void this.ensureStarted(r)
  }

  /** Watch a root unless this node watches it already; resolved once its first walk is done. */
  async ensureStarted (r: Root): Promise<void> {
    if (this.active.has(r.root)) return await this.walking.get(r.root)
    return await this.#start(r)
  }

  /** Start watching a root; resolved once its first walk is done (status says `walking` until then). */
  #start (r: Root): Promise<void> {
    this.roots.set(r.root, r)
    this.active.add(r.root)
    // A root taken over from a poller that is gone: starts written since it stopped are not seeds.
    const since = this.#store.seedsSince(r.root)
    const walk = this.#mayWalk.then(async () => {
      // The checks of `watch add` made as the root is opened, one component at a time and never through a symlink, its
      // owner checked on the fd; the walk and every read below go through that fd (held-root.ts): check and use are
      // one. In a cluster the claim checked the path too, maybe a while ago.
      const held = await openRoot(r.root, this.adminRoot(r) ? null : r.uid)
      if (!('dev' in held)) return held
      this.refused.delete(r.root)
      this.#log.debug({ root: r.root, walk: 'begin' }, 'walking a watch root')
      return await this.#watcher.addGroup(`root:${r.root}`, this.groupOptions(r), { path: r.root, depth: r.depth, held, ...(since !== undefined ? { seedsSince: since } : {}) })
    }).then((res) => {
      if ('reason' in res) {
        // Not walked; in a cluster the node's next look gives it up (cluster/watch-roots.ts), and a node that can polls it.
        this.refused.set(r.root, res.reason)
        this.#log.warn({ root: r.root, reason: res.reason }, 'not walking a watch root: its path fails the checks of watch add')
        return
      }
      this.#log.info({ root: r.root, dirs: res.dirs, launchDirs: res.launchDirs, poll: r.poll, source: r.source }, 'watching')
    }, (err: unknown) => {
      this.#log.error({ root: r.root, err }, 'walking a watch root failed')
    }).finally(() => {
      if (this.walking.get(r.root) === walk) this.walking.delete(r.root)
      // Runs in this root's dirs were watched on their own meanwhile: the root covers them now.
      this.#afterWalk()
    })
    this.walking.set(r.root, walk)
    return walk
  }

  /** Under a root still being walked, within its depth: the walk will watch it (and read it after the watch is set). */
  awaitsWalk (dir: string): boolean {
    const r = this.rootOf(dir)
    if (r === null || !this.walking.has(r.root)) return false
    const rest = dir.slice(r.root.length).split(sep).filter(x => x !== '')
    return rest.length <= r.depth && !rest.some(skippedName)
  }

  async stopRoot (root: string): Promise<void> {
    this.roots.delete(root)
    await this.deactivate(root)
  }

  /** Stop walking and watching a root this node still lists (another node polls it, or this node is fenced). */
  async deactivate (root: string): Promise<void> {
    this.active.delete(root)
    this.refused.delete(root)
    await this.#watcher.removeGroup(`root:${root}`)
  }

  /** The root a launch dir sits under (the deepest one this node watches). */
  rootOf (dir: string): Root | null {
    let best: Root | null = null
    for (const r of this.roots.values()) {
      if (this.active.has(r.root) && (dir === r.root || dir.startsWith(r.root.endsWith(sep) ? r.root : r.root + sep)) && (best === null || r.root.length > best.root.length)) best = r
    }
    return best
  }

  /** No more looks; a walk still going ends at its next step once the watcher is stopped, one not begun finds it so. */
  async stop (): Promise<void> {
    this.#stopped = true
    const timers = this.#deps.timers ?? realTimers
    timers.clearTimeout(this.#recheckTimer)
    this.#letWalk()
    await Promise.allSettled([...this.walking.values()])
  }
}
