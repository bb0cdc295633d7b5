// The watch room: roots from the config and from the API (persisted in watches.json), plus the launch dir of every
// live run wherever it is. It turns the watcher's events into the run lifecycle's few calls: a file event in a launch
// dir checks that dir's live runs at once (Monitor.checkRun: start, clean end, dirty end), and an unclaimed start
// under a root with targets becomes an auto-run.
// What a user can make it do is bounded (SPEC section 11, config `limits`): watch roots per user, watched dirs per
// user (all their roots together: walks stop there and `watch list`/`status` say so), and the polling interval.
// Admins (uid 0, the admin group) and the config's roots are not limited.
import { lstat, realpath } from 'node:fs/promises'
import { isAbsolute, join, resolve, sep } from 'node:path'
import { can, PERSONAL } from '../rules/access.js'
import type { Config, WatchRoot } from '../config.js'
import { isCoded, nfsError } from '../errors.js'
import { watchEvent, type EventBus } from '../events.js'
import type { UserDirectory } from '../identity/users.js'
import type { Logger } from '../logger.js'
import type { RunChecks, RunLifecycle } from '../runs/service.js'
import type { SecretsStore } from '../store/secrets-store.js'
import { localWatchRoots, openWatchRootStore, type RootRefusal, type StoredWatch, type WatchRoots } from '../store/watch-roots.js'
import type { Caller } from '../types.js'
import { AutoRuns, type AutoRunDecision } from './auto-run.js'
import { openDir, sameFile } from '../os/read-owned.js'
import type { WatchSummary, WatchView } from '../contract/watches.js'
import { checkRootPath } from './root-check.js'
import { openRoot } from './held-root.js'
import { RunDirWatcher, type GroupOptions, type WatcherEvent } from './watcher.js'
import { skippedName, type WalkFs } from './walk.js'
import { realTimers, type TimerHandle, type Timers } from '../os/timers.js'

/** The watch room's face to the API and status. */
export interface WatchService {
  /** what `caller` may see (a non-admin: the config's roots and their own); everything without a caller */
  summary (caller?: Caller): WatchSummary
  list (caller: Caller): WatchView[]
  add (caller: Caller, req: { root: string, depth?: number, workspace?: string, targets?: string[], poll?: boolean, intervalMs?: number }): Promise<WatchView>
  remove (caller: Caller, root: string): Promise<void>
}

export interface WatchServiceDeps {
  config: Config
  runs: RunLifecycle
  /** the store's own face, for the workspace a watch names */
  workspaces: Pick<SecretsStore, 'getWorkspace'>
  monitor: RunChecks
  users: UserDirectory
  events: EventBus
  logger: Logger
  clock: () => Date
  /** polling interval for the dirs of runs armed inside a Slurm job (their head may write from another node) */
  runPollMs?: number
  debounceMs?: number
  /** wraps the watcher's fs (tests count or hold its calls) */
  wrapFs?: (fs: WalkFs) => WalkFs
  /** walk the roots only once startWalks() is called (the daemon: once it serves), not from open() */
  deferWalks?: boolean
  /** told what became of each start seen under a root (auto-run.ts); tests wait for it */
  onAutoRun?: (d: AutoRunDecision) => void
  /** the API's roots and which roots this node polls (cluster mode: shared, one poller each); default watches.json, all mine */
  roots?: WatchRoots
  /** a single node looks again this often at the roots it stopped or did not walk (their path failed the checks) */
  rootRecheckMs?: number
  timers?: Timers
}

interface Root {
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

type AddRequest = Parameters<WatchService['add']>[1]
const RUNS_NATIVE = 'runs:native'
const RUNS_POLL = 'runs:poll'

export class DirWatchService implements WatchService {
  readonly watcher: RunDirWatcher
  readonly #deps: WatchServiceDeps
  readonly #log: Logger
  readonly #store: WatchRoots
  readonly #roots = new Map<string, Root>()
  /** the roots this node walks and watches (in a cluster, the others are polled by another node) */
  readonly #active = new Set<string>()
  readonly #auto: AutoRuns
  readonly #runDirs = new Map<string, string>()
  /** roots whose first walk is still going (the daemon serves meanwhile) */
  readonly #walking = new Map<string, Promise<void>>()
  /** roots of the API this node was to walk and did not: their path failed the checks of `watch add` (root-check.ts) */
  readonly #refused = new Map<string, string>()
  #unsubscribe: () => void = () => {}
  #unsubscribeRoots: () => void = () => {}
  #syncing: Promise<void> = Promise.resolve()
  /** changes of which roots this node polls, one at a time */
  #roster: Promise<void> = Promise.resolve()
  /** resolved once walks may begin (at once, or at startWalks) */
  readonly #mayWalk: Promise<void>
  #letWalk: () => void = () => {}
  #recheckTimer: TimerHandle | undefined
  #stopped = false

  private constructor (deps: WatchServiceDeps, store: WatchRoots) {
    this.#deps = deps
    this.#store = store
    this.#log = deps.logger.child({ room: 'watch' })
    this.watcher = new RunDirWatcher({ logger: deps.logger, ...(deps.debounceMs !== undefined ? { debounceMs: deps.debounceMs } : {}), ...(deps.wrapFs !== undefined ? { wrapFs: deps.wrapFs } : {}) })
    this.#auto = new AutoRuns(deps)
    this.#mayWalk = deps.deferWalks === true ? new Promise(resolve => { this.#letWalk = resolve }) : Promise.resolve()
  }

  /**
   * Begin the walks of the roots known at open() (deferWalks). The daemon calls it once it listens: a root of 10,000
   * launch dirs is read while /health and the API already answer, not before (its readdirs and first reads fill the
   * thread pool the start-up's own file reads wait on). Until then those roots say `walking`.
   */
  startWalks (): void {
    this.#letWalk()
  }

  static async open (deps: WatchServiceDeps): Promise<DirWatchService> {
    const store = deps.roots ?? localWatchRoots(await openWatchRootStore(join(deps.config.stateDir, 'watches.json')))
    const svc = new DirWatchService(deps, store)
    svc.watcher.on(e => svc.#onWatch(e))
    const runPoll = deps.runPollMs ?? 1000
    await svc.watcher.addGroup(RUNS_NATIVE, { poll: false, intervalMs: runPoll }, null)
    await svc.watcher.addGroup(RUNS_POLL, { poll: true, intervalMs: runPoll }, null)
    // The roots are walked in the background (from startWalks when deferred): the daemon answers meanwhile.
    for (const w of deps.config.watch) svc.#track(await svc.#fromConfig(w))
    for (const w of store.all()) {
      if (svc.#roots.has(w.root)) continue
      svc.#track(fromStored(w))
    }
    // In a cluster, roots come and go on other nodes, and who polls one changes (a poller died, this node fenced).
    svc.#unsubscribeRoots = store.onChange(() => { svc.#reconcile() })
    // A cluster node claims a shared root, and keeps polling it, only while its path passes the checks `watch add` made.
    store.setCheck(async w => await svc.#judge(svc.#roots.get(w.root) ?? fromStored(w)))
    // Runs come and go through the lifecycle's events: keep their launch dirs watched while they live.
    svc.#unsubscribe = deps.events.subscribe(e => { if (e.type.startsWith('run.')) svc.#syncRuns() })
    svc.#syncRuns()
    await svc.#syncing
    // In a cluster the claims look at every root each second (cluster/watch-roots.ts); a single node looks here.
    if (store.node === null) svc.#scheduleRecheck()
    return svc
  }

  #scheduleRecheck (): void {
    if (this.#stopped) return
    const timers = this.#deps.timers ?? realTimers
    this.#recheckTimer = timers.setTimeout(() => {
      void this.recheckRefused().catch((err: unknown) => { this.#log.error({ err }, 'looking again at the roots not walked failed') })
        .finally(() => { this.#scheduleRecheck() })
    }, this.#deps.rootRecheckMs ?? 30_000)
    this.#recheckTimer.unref()
  }

  /**
   * A single node: walk again each root it stopped or did not walk (its path failed the checks of `watch add`: a
   * symlink swapped in, not there yet) once its path passes them. Without this it waited for the next start.
   */
  async recheckRefused (): Promise<void> {
    for (const root of [...this.#refused.keys()]) {
      const r = this.#roots.get(root)
      if (r === undefined || !this.#active.has(root) || this.#walking.has(root) || this.#stopped) continue
      if (await this.#judge(r) !== null) continue
      this.#log.info({ root }, 'a watch root not walked passes the checks of watch add now: walking it again')
      await this.watcher.removeGroup(`root:${root}`)
      this.#active.delete(root)
      void this.#ensureStarted(r)
    }
  }

  async #fromConfig (w: WatchRoot): Promise<Root> {
    // Canonical paths: a run's launch dir comes from the CLI's getcwd(), which is physical.
    const root = await realpath(w.root).catch(() => resolve(w.root))
    return { root, depth: w.depth, workspace: w.workspace ?? null, targets: [...(w.targets ?? [])], poll: w.poll, intervalMs: w.intervalMs, source: 'config', owner: 'config', uid: 0 }
  }

  /** A root of the config or of an admin: makes auto-runs for any launch dir's owner and is not limited. */
  #adminRoot (r: Root): boolean {
    if (r.source === 'config' || r.uid === 0) return true
    try {
      return this.#deps.users.callerForUid(r.uid).isAdmin
    } catch {
      return false
    }
  }

  /** How a root is watched: a user's walks only their own dirs, within their dir budget, polled no faster than allowed. */
  #groupOptions (r: Root): GroupOptions {
    // Anything new under an API root is reached by path only while the path is still the dir that was added.
    const guard = r.source === 'api' ? { guard: async () => await this.#stillSafe(r) } : {}
    if (this.#adminRoot(r)) return { poll: r.poll, intervalMs: r.intervalMs, ...guard }
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
  async #judge (r: Root): Promise<RootRefusal | null> {
    if (r.source !== 'api') return null
    return await checkRootPath(r.root, this.#adminRoot(r) ? null : r.uid)
  }

  /**
   * The watcher's guard for a root it watches: a path that turned unsafe stops the root at once (its watches go; it
   * stays listed as not walked, and in a cluster the node's next look gives it up). A path not seen is the watcher's
   * own business (its dirs' events), and the cluster's look releases it after a while.
   */
  async #stillSafe (r: Root): Promise<boolean> {
    const why = await this.#judge(r)
    if (why === null || !why.unsafe) return true
    if (!this.#refused.has(r.root) && this.#active.has(r.root)) {
      this.#refused.set(r.root, why.reason)
      this.#log.warn({ root: r.root, reason: why.reason }, 'stopped watching a watch root: its path fails the checks of watch add')
      // Not awaited: the watcher asks from inside its own handlers; the group is gone from its map at once.
      void this.watcher.removeGroup(`root:${r.root}`)
    }
    return false
  }

  /** Know a root, and watch it if this node is the one to poll it. */
  #track (r: Root): void {
    this.#roots.set(r.root, r)
    if (this.#store.mine(r.root)) void this.#ensureStarted(r)
  }

  /** Watch a root unless this node watches it already; resolved once its first walk is done. */
  async #ensureStarted (r: Root): Promise<void> {
    if (this.#active.has(r.root)) return await this.#walking.get(r.root)
    return await this.#start(r)
  }

  /** Start watching a root; resolved once its first walk is done (status says `walking` until then). */
  #start (r: Root): Promise<void> {
    this.#roots.set(r.root, r)
    this.#active.add(r.root)
    // A root taken over from a poller that is gone: starts written since it stopped are not seeds.
    const since = this.#store.seedsSince(r.root)
    const walk = this.#mayWalk.then(async () => {
      // The checks of `watch add` made as the root is opened, one component at a time and never through a symlink, its
      // owner checked on the fd; the walk and every read below go through that fd (held-root.ts): check and use are
      // one. In a cluster the claim checked the path too, maybe a while ago.
      const held = await openRoot(r.root, this.#adminRoot(r) ? null : r.uid)
      if (!('dev' in held)) return held
      this.#refused.delete(r.root)
      this.#log.debug({ root: r.root, walk: 'begin' }, 'walking a watch root')
      return await this.watcher.addGroup(`root:${r.root}`, this.#groupOptions(r), { path: r.root, depth: r.depth, held, ...(since !== undefined ? { seedsSince: since } : {}) })
    }).then((res) => {
      if ('reason' in res) {
        // Not walked; in a cluster the node's next look gives it up (cluster/watch-roots.ts), and a node that can polls it.
        this.#refused.set(r.root, res.reason)
        this.#log.warn({ root: r.root, reason: res.reason }, 'not walking a watch root: its path fails the checks of watch add')
        return
      }
      this.#log.info({ root: r.root, dirs: res.dirs, launchDirs: res.launchDirs, poll: r.poll, source: r.source }, 'watching')
    }, (err: unknown) => {
      this.#log.error({ root: r.root, err }, 'walking a watch root failed')
    }).finally(() => {
      if (this.#walking.get(r.root) === walk) this.#walking.delete(r.root)
      // Runs in this root's dirs were watched on their own meanwhile: the root covers them now.
      this.#syncRuns()
    })
    this.#walking.set(r.root, walk)
    return walk
  }

  /** Under a root still being walked, within its depth: the walk will watch it (and read it after the watch is set). */
  #awaitsWalk (dir: string): boolean {
    const r = this.#rootOf(dir)
    if (r === null || !this.#walking.has(r.root)) return false
    const rest = dir.slice(r.root.length).split(sep).filter(x => x !== '')
    return rest.length <= r.depth && !rest.some(skippedName)
  }

  async #stopRoot (root: string): Promise<void> {
    this.#roots.delete(root)
    await this.#deactivate(root)
  }

  /** Stop walking and watching a root this node still lists (another node polls it, or this node is fenced). */
  async #deactivate (root: string): Promise<void> {
    this.#active.delete(root)
    this.#refused.delete(root)
    await this.watcher.removeGroup(`root:${root}`)
  }

  /**
   * Follow the shared roots (cluster mode): list the ones added on other nodes, drop the ones removed there, and walk
   * exactly the roots this node is to poll now. The watch list's roots stay listed whoever polls them.
   */
  #reconcile (): void {
    this.#roster = this.#roster.then(async () => {
      const shared = new Map(this.#store.all().map(w => [w.root, w]))
      for (const r of [...this.#roots.values()]) {
        if (r.source !== 'api' || shared.has(r.root)) continue
        await this.#stopRoot(r.root)
        this.#log.info({ root: r.root }, 'a shared watch root was removed: not watching it any more')
      }
      for (const w of shared.values()) if (!this.#roots.has(w.root)) this.#roots.set(w.root, fromStored(w))
      for (const r of [...this.#roots.values()]) {
        const mine = this.#store.mine(r.root)
        if (mine && !this.#active.has(r.root)) {
          void this.#ensureStarted(r)
        } else if (!mine && this.#active.has(r.root)) {
          await this.#deactivate(r.root)
          this.#log.info({ root: r.root, poller: this.#store.pollerOf(r.root) }, 'not polling a shared watch root here any more')
        }
      }
      this.#syncRuns()
    }).catch((err: unknown) => { this.#log.error({ err }, 'following the shared watch roots failed') })
  }

  /** The root a launch dir sits under (the deepest one this node watches). */
  #rootOf (dir: string): Root | null {
    let best: Root | null = null
    for (const r of this.#roots.values()) {
      if (this.#active.has(r.root) && (dir === r.root || dir.startsWith(r.root.endsWith(sep) ? r.root : r.root + sep)) && (best === null || r.root.length > best.root.length)) best = r
    }
    return best
  }

  #liveRunsIn (dir: string): string[] {
    return this.#deps.runs.live(dir).map(r => r.runId)
  }

  #onWatch (e: WatcherEvent): void {
    if (e.type === 'degraded') {
      const root = e.group.startsWith('root:') ? e.group.slice(5) : e.group
      this.#deps.events.publish({ type: 'watch.degraded', user: this.#roots.get(root)?.owner ?? 'root', reason: e.reason })
      return
    }
    if (e.type === 'run-started') {
      const root = this.#rootOf(e.launchDir)
      if (root !== null) void this.#auto.started({ ...root, onlyUid: this.#adminRoot(root) ? null : root.uid }, e.launchDir, e.record, e)
    }
    if (e.type === 'launch-dir-found' || e.type === 'activity' || e.type === 'run-ended') {
      for (const runId of this.#liveRunsIn(e.launchDir)) void this.#deps.monitor.checkRun(runId)
    }
  }

  /** Watch the launch dir of every live run that no root covers; drop the ones no live run needs. Serialised. */
  #syncRuns (): void {
    this.#syncing = this.#syncing.then(async () => {
      const want = new Map<string, string>()
      for (const r of this.#deps.runs.live()) {
        if (!isAbsolute(r.launchDir) || this.watcher.covers(r.launchDir, [RUNS_NATIVE, RUNS_POLL]) || this.#awaitsWalk(r.launchDir)) continue
        want.set(r.launchDir, r.slurmJobId !== null || want.get(r.launchDir) === RUNS_POLL ? RUNS_POLL : RUNS_NATIVE)
      }
      for (const [dir, group] of [...this.#runDirs]) {
        if (want.get(dir) === group) continue
        await this.watcher.removeLaunchDir(group, dir)
        this.#runDirs.delete(dir)
      }
      for (const [dir, group] of want) {
        if (this.#runDirs.has(dir)) continue
        this.#runDirs.set(dir, group)
        await this.watcher.addLaunchDir(group, dir)
      }
    }).catch(err => { this.#log.error({ err }, 'syncing the launch dirs of runs failed') })
  }

  /** Which roots a caller may see: an admin all, a user the config's and their own (paths are not for everyone). */
  #visible (caller: Caller | undefined, r: Root): boolean {
    return caller === undefined || caller.isAdmin || r.source === 'config' || r.uid === caller.uid
  }

  /** For `status` and metrics; without a caller (metrics, the daemon's own use) everything. */
  summary (caller?: Caller): WatchSummary {
    const groups = this.watcher.groups()
    const seen = (key: string): boolean => {
      if (!key.startsWith('root:')) return caller === undefined || caller.isAdmin
      const r = this.#roots.get(key.slice(5))
      return r !== undefined && this.#visible(caller, r)
    }
    const mine = groups.filter(g => seen(g.key))
    const visible = [...this.#roots.values()].filter(r => this.#visible(caller, r))
    return {
      roots: visible.length,
      // in a cluster: how many of them this node walks and polls (another node polls the rest)
      ...(this.#store.node !== null ? { polledHere: visible.filter(r => this.#active.has(r.root)).length } : {}),
      launchDirs: mine.reduce((n, g) => n + g.launchDirs, 0),
      degraded: mine.filter(g => g.degraded !== null).map(g => `${g.key.replace(/^root:/, '')}: ${g.degraded}`),
      walking: [...this.#walking.keys()].filter(root => seen(`root:${root}`)),
      limited: mine.filter(g => g.limited !== null).map(g => `${g.key.replace(/^root:/, '')}: ${g.limited}`)
    }
  }

  #view (r: Root): WatchView {
    const g = this.watcher.groups().find(x => x.key === `root:${r.root}`)
    return { root: r.root, depth: r.depth, workspace: r.workspace, targets: r.targets, poll: g?.poll ?? r.poll, intervalMs: this.#groupOptions(r).intervalMs, owner: r.owner, source: r.source, launchDirs: g?.launchDirs ?? 0, degraded: g?.degraded ?? this.#refusedView(r.root), limited: g?.limited ?? null, walking: this.#walking.has(r.root), ...this.#poller(r.root) }
  }

  #refusedView (root: string): string | null {
    const why = this.#refused.get(root)
    return why !== undefined ? `not walked: ${why}` : null
  }

  /** Cluster mode: the node that polls the root, as this node knows it (itself only while it really watches it). */
  #poller (root: string): { poller?: string | null } {
    const node = this.#store.node
    if (node === null) return {}
    if (this.#active.has(root)) return { poller: node }
    const p = this.#store.pollerOf(root)
    return { poller: p === node ? null : p }
  }

  list (caller: Caller): WatchView[] {
    const roots = [...this.#roots.values()].filter(r => this.#visible(caller, r)).map(r => this.#view(r))
    const mine = new Set(this.#deps.runs.live().filter(r => caller.isAdmin || r.uid === caller.uid).map(r => r.launchDir))
    const runs = [...this.#runDirs].filter(([dir]) => mine.has(dir)).map(([dir, group]): WatchView => ({
      root: dir, depth: 0, workspace: null, targets: [], poll: group === RUNS_POLL, intervalMs: this.#deps.runPollMs ?? 1000, owner: caller.user, source: 'run', launchDirs: 1, degraded: null, limited: null, walking: false, ...(this.#store.node !== null ? { poller: this.#store.node } : {})
    }))
    return [...roots, ...runs]
  }

  /**
   * The dir a request names, resolved once and checked as what will be watched: the canonical path is opened
   * (O_DIRECTORY|O_NOFOLLOW) and its owner checked on the fd; then no component of that path may be a symlink and
   * the path must still name the dir held. A symlink swapped in anywhere between the steps is refused, never followed
   * into someone else's dir (issue 13, the `watch add` race).
   */
  async #resolveRoot (caller: Caller, requested: string): Promise<string> {
    const shown = JSON.stringify(requested.slice(0, 200))
    let root: string
    try {
      root = await realpath(requested)
    } catch {
      throw nfsError('NFS_ERR_INVALID_PATH', [`${shown}: no such directory`])
    }
    const fh = await openDir(root)
    if (fh === null) throw nfsError('NFS_ERR_INVALID_PATH', [`${shown}: not a directory (symlinks are not followed)`])
    try {
      const held = await fh.stat()
      if (!caller.isAdmin && held.uid !== caller.uid) throw nfsError('NFS_ERR_FORBIDDEN', [`${root} is not yours to watch`])
      for (let p = root; ; p = resolve(p, '..')) {
        if ((await lstat(p)).isSymbolicLink()) throw nfsError('NFS_ERR_UNSAFE_PATH', [`${root}: a component changed into a symlink while it was checked`])
        if (p === '/') break
      }
      if (!sameFile(await lstat(root), held)) throw nfsError('NFS_ERR_UNSAFE_PATH', [`${root}: changed while it was checked`])
    } catch (err) {
      if (isCoded(err)) throw err
      throw nfsError('NFS_ERR_INVALID_PATH', [`${shown}: changed while it was checked`])
    } finally {
      await fh.close()
    }
    return root
  }

  async add (caller: Caller, req: AddRequest): Promise<WatchView> {
    if (!isAbsolute(req.root)) throw nfsError('NFS_ERR_INVALID_PATH', [`${JSON.stringify(req.root.slice(0, 200))}: a watch root must be absolute`])
    const limits = this.#deps.config.limits
    const intervalMs = req.intervalMs ?? (caller.isAdmin ? 1000 : Math.max(1000, limits.minPollIntervalMs))
    if (!caller.isAdmin && intervalMs < limits.minPollIntervalMs) throw nfsError('NFS_ERR_LIMIT', [`limits.minPollIntervalMs (${limits.minPollIntervalMs}): asked for ${intervalMs} ms`])
    const root = await this.#resolveRoot(caller, req.root)
    const workspace = req.workspace !== undefined && req.workspace !== '' && req.workspace !== PERSONAL ? req.workspace : null
    if (workspace !== null) {
      const ws = this.#deps.workspaces.getWorkspace(workspace)
      if (ws === undefined) throw nfsError('NFS_ERR_WORKSPACE_NOT_FOUND', [JSON.stringify(workspace.slice(0, 80))])
      if (!caller.isAdmin && !can(caller, 'runs.launch', ws)) throw nfsError('NFS_ERR_FORBIDDEN', [`watching for runs in workspace ${ws.name} needs the launch role`])
    }
    const targets = [...new Set(req.targets ?? [])]
    for (const t of targets) {
      if (!this.#deps.runs.hasTarget(t)) throw nfsError('NFS_ERR_INVALID_TARGET', [JSON.stringify(t.slice(0, 40))])
    }
    if (this.#roots.has(root)) throw nfsError('NFS_ERR_WATCH_EXISTS', [root])
    const stored = await this.#store.add({
      root,
      depth: req.depth ?? 3,
      workspace,
      targets,
      poll: req.poll ?? false,
      intervalMs,
      uid: caller.uid,
      user: caller.user,
      createdAt: this.#deps.clock().toISOString()
    }, caller.isAdmin ? undefined : limits.watchRootsPerUser)
    const r: Root = { root, depth: stored.depth, workspace, targets, poll: stored.poll, intervalMs: stored.intervalMs, source: 'api', owner: caller.user, uid: caller.uid }
    this.#roots.set(root, r)
    // In a cluster the adding node polls it (claimed in the same transaction), unless it is fenced right now.
    if (this.#store.mine(root)) await this.#ensureStarted(r)
    this.#syncRuns()
    // In a cluster every node announces it from the shared roots' feed, this one too (events.ts, follow).
    if (this.#store.node === null) this.#deps.events.publish(watchEvent({ op: 'added', watch: stored }))
    return this.#view(r)
  }

  async remove (caller: Caller, rootArg: string): Promise<void> {
    const root = isAbsolute(rootArg) ? await realpath(rootArg).catch(() => resolve(rootArg)) : rootArg
    const r = this.#roots.get(root) ?? this.#roots.get(rootArg)
    if (r === undefined || (!caller.isAdmin && r.source === 'api' && r.uid !== caller.uid)) throw nfsError('NFS_ERR_WATCH_NOT_FOUND', [JSON.stringify(rootArg.slice(0, 200))])
    if (r.source === 'config') throw nfsError('NFS_ERR_FORBIDDEN', [`${r.root} is watched by the config file; remove it there and reload`])
    await this.#store.remove(r.root)
    await this.#stopRoot(r.root)
    this.#syncRuns()
    if (this.#store.node === null) this.#deps.events.publish(watchEvent({ op: 'removed', watch: { root: r.root, user: r.owner, workspace: r.workspace } }))
  }

  /** SIGHUP: start the config roots that are new or changed, stop the ones gone. API roots stay. */
  async reload (config: Config): Promise<void> {
    const next = new Map<string, Root>()
    for (const w of config.watch) { const r = await this.#fromConfig(w); next.set(r.root, r) }
    for (const r of [...this.#roots.values()]) {
      if (r.source !== 'config') continue
      const n = next.get(r.root)
      if (n === undefined || JSON.stringify(n) !== JSON.stringify(r)) await this.#stopRoot(r.root)
    }
    for (const r of next.values()) {
      if (this.#roots.has(r.root)) continue
      this.#track(r)
    }
    // In a cluster, a config root dropped here may still be a shared one: list it again as such.
    if (this.#store.node !== null) this.#reconcile()
    await this.#roster
    this.#syncRuns()
    await this.#syncing
  }

  async stop (): Promise<void> {
    this.#stopped = true
    const timers = this.#deps.timers ?? realTimers
    timers.clearTimeout(this.#recheckTimer)
    this.#unsubscribe()
    this.#unsubscribeRoots()
    await this.#roster
    await this.#syncing
    await this.watcher.stop()
    // a walk still going ends at its next step once the watcher is stopped; one not begun finds it stopped
    this.#letWalk()
    await Promise.allSettled([...this.#walking.values()])
  }
}

/** A root of the API as the store keeps it. Pure. */
function fromStored (w: StoredWatch): Root {
  return { root: w.root, depth: w.depth, workspace: w.workspace, targets: w.targets, poll: w.poll, intervalMs: w.intervalMs, source: 'api', owner: w.user, uid: w.uid }
}
