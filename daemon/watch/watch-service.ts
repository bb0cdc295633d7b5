// The watch room: roots from the config and from the API (persisted in watches.json), plus the launch dir of every
// live run wherever it is. It turns the watcher's events into the run lifecycle's few calls: a file event in a launch
// dir checks that dir's live runs at once (Monitor.checkRun: start, clean end, dirty end), and an unclaimed start
// under a root with targets becomes an auto-run.
// What a user can make it do is bounded (SPEC section 11, config `limits`): watch roots per user, watched dirs per
// user (all their roots together: walks stop there and `watch list`/`status` say so), and the polling interval.
// Admins (uid 0, the admin group) and the config's roots are not limited.
import { realpath } from 'node:fs/promises'
import { isAbsolute, join, resolve } from 'node:path'
import { can, PERSONAL } from '../rules/access.js'
import type { Config } from '../config.js'
import { nfsError } from '../errors.js'
import { watchEvent, type EventBus } from '../events.js'
import type { UserDirectory } from '../identity/users.js'
import type { Logger } from '../logger.js'
import type { RunChecks, RunLifecycle } from '../runs/service.js'
import type { SecretsStore } from '../store/secrets-store.js'
import { localWatchRoots, openWatchRootStore, type WatchRoots } from '../store/watch-roots.js'
import type { Caller } from '../types.js'
import type { Checkpoints } from '../nextflow/history-checkpoints.js'
import { AutoRuns, type AutoRunDecision } from './auto-run.js'
import type { WatchSummary, WatchView } from '../contract/watches.js'
import { resolveRoot } from './root-resolve.js'
import { RootViews } from './root-views.js'
import { fromStored, RootWalks, type Root } from './root-walks.js'
import { RunDirWatcher, type WatcherEvent } from './watcher.js'
import type { WalkFs } from './walk.js'
import type { Timers } from '../os/timers.js'

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
  /** the daemon's history checkpoints, shared with the monitor's probes (auto-run.ts); else the auto-runs' own */
  histories?: Checkpoints
  /** the API's roots and which roots this node polls (cluster mode: shared, one poller each); default watches.json, all mine */
  roots?: WatchRoots
  /** a single node looks again this often at the roots it stopped or did not walk (their path failed the checks) */
  rootRecheckMs?: number
  timers?: Timers
}

type AddRequest = Parameters<WatchService['add']>[1]
const RUNS_NATIVE = 'runs:native'
const RUNS_POLL = 'runs:poll'

export class DirWatchService implements WatchService {
  readonly watcher: RunDirWatcher
  readonly #deps: WatchServiceDeps
  readonly #log: Logger
  readonly #store: WatchRoots
  readonly #walks: RootWalks
  readonly #views: RootViews
  readonly #auto: AutoRuns
  readonly #runDirs = new Map<string, string>()
  #unsubscribe: () => void = () => {}
  #unsubscribeRoots: () => void = () => {}
  #syncing: Promise<void> = Promise.resolve()
  /** changes of which roots this node polls, one at a time */
  #roster: Promise<void> = Promise.resolve()

  private constructor (deps: WatchServiceDeps, store: WatchRoots) {
    this.#deps = deps
    this.#store = store
    this.#log = deps.logger.child({ room: 'watch' })
    this.watcher = new RunDirWatcher({ logger: deps.logger, ...(deps.debounceMs !== undefined ? { debounceMs: deps.debounceMs } : {}), ...(deps.wrapFs !== undefined ? { wrapFs: deps.wrapFs } : {}) })
    this.#auto = new AutoRuns(deps)
    this.#walks = new RootWalks({ ...deps, logger: this.#log, store, watcher: this.watcher, afterWalk: () => { this.#syncRuns() } })
    this.#views = new RootViews(this.#walks, this.watcher, store)
  }

  /**
   * Begin the walks of the roots known at open() (deferWalks). The daemon calls it once it listens: a root of 10,000
   * launch dirs is read while /health and the API already answer, not before (its readdirs and first reads fill the
   * thread pool the start-up's own file reads wait on). Until then those roots say `walking`.
   */
  startWalks (): void {
    this.#walks.startWalks()
  }

  static async open (deps: WatchServiceDeps): Promise<DirWatchService> {
    const store = deps.roots ?? localWatchRoots(await openWatchRootStore(join(deps.config.stateDir, 'watches.json')))
    const svc = new DirWatchService(deps, store)
    svc.watcher.on(e => svc.#onWatch(e))
    const runPoll = deps.runPollMs ?? 1000
    await svc.watcher.addGroup(RUNS_NATIVE, { poll: false, intervalMs: runPoll }, null)
    await svc.watcher.addGroup(RUNS_POLL, { poll: true, intervalMs: runPoll }, null)
    // The roots are walked in the background (from startWalks when deferred): the daemon answers meanwhile.
    const walks = svc.#walks
    for (const w of deps.config.watch) walks.track(await walks.fromConfig(w))
    for (const w of store.all()) {
      if (walks.roots.has(w.root)) continue
      walks.track(fromStored(w))
    }
    // In a cluster, roots come and go on other nodes, and who polls one changes (a poller died, this node fenced).
    svc.#unsubscribeRoots = store.onChange(() => { svc.#reconcile() })
    // A cluster node claims a shared root, and keeps polling it, only while its path passes the checks `watch add` made.
    store.setCheck(async w => await walks.judge(walks.roots.get(w.root) ?? fromStored(w)))
    // Runs come and go through the lifecycle's events: keep their launch dirs watched while they live.
    svc.#unsubscribe = deps.events.subscribe(e => { if (e.type.startsWith('run.')) svc.#syncRuns() })
    svc.#syncRuns()
    await svc.#syncing
    // In a cluster the claims look at every root each second (cluster/watch-roots.ts); a single node looks here.
    if (store.node === null) walks.scheduleRecheck()
    return svc
  }

  /** A single node's look at the roots it did not walk (RootWalks.recheckRefused); tests call it too. */
  async recheckRefused (): Promise<void> {
    await this.#walks.recheckRefused()
  }

  /**
   * Follow the shared roots (cluster mode): list the ones added on other nodes, drop the ones removed there, and walk
   * exactly the roots this node is to poll now. The watch list's roots stay listed whoever polls them.
   */
  #reconcile (): void {
    this.#roster = this.#roster.then(async () => {
      const shared = new Map(this.#store.all().map(w => [w.root, w]))
      for (const r of [...this.#walks.roots.values()]) {
        if (r.source !== 'api' || shared.has(r.root)) continue
        await this.#walks.stopRoot(r.root)
        this.#log.info({ root: r.root }, 'a shared watch root was removed: not watching it any more')
      }
      for (const w of shared.values()) if (!this.#walks.roots.has(w.root)) this.#walks.roots.set(w.root, fromStored(w))
      for (const r of [...this.#walks.roots.values()]) {
        const mine = this.#store.mine(r.root)
        if (mine && !this.#walks.active.has(r.root)) {
          void this.#walks.ensureStarted(r)
        } else if (!mine && this.#walks.active.has(r.root)) {
          await this.#walks.deactivate(r.root)
          this.#log.info({ root: r.root, poller: this.#store.pollerOf(r.root) }, 'not polling a shared watch root here any more')
        }
      }
      this.#syncRuns()
    }).catch((err: unknown) => { this.#log.error({ err }, 'following the shared watch roots failed') })
  }

  #liveRunsIn (dir: string): string[] {
    return this.#deps.runs.live(dir).map(r => r.runId)
  }

  #onWatch (e: WatcherEvent): void {
    if (e.type === 'degraded') {
      const root = e.group.startsWith('root:') ? e.group.slice(5) : e.group
      this.#deps.events.publish({ type: 'watch.degraded', user: this.#walks.roots.get(root)?.owner ?? 'root', reason: e.reason })
      return
    }
    if (e.type === 'run-started') {
      const root = this.#walks.rootOf(e.launchDir)
      if (root !== null) void this.#auto.started({ ...root, onlyUid: this.#walks.adminRoot(root) ? null : root.uid }, e.launchDir, e.record, e)
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
        if (!isAbsolute(r.launchDir) || this.watcher.covers(r.launchDir, [RUNS_NATIVE, RUNS_POLL]) || this.#walks.awaitsWalk(r.launchDir)) continue
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

  /** For `status` and metrics; without a caller (metrics, the daemon's own use) everything. */
  summary (caller?: Caller): WatchSummary {
    return this.#views.summary(caller)
  }

  list (caller: Caller): WatchView[] {
    const roots = [...this.#walks.roots.values()].filter(r => this.#views.visible(caller, r)).map(r => this.#views.view(r))
    const mine = new Set(this.#deps.runs.live().filter(r => caller.isAdmin || r.uid === caller.uid).map(r => r.launchDir))
    const runs = [...this.#runDirs].filter(([dir]) => mine.has(dir)).map(([dir, group]): WatchView => ({
      root: dir, depth: 0, workspace: null, targets: [], poll: group === RUNS_POLL, intervalMs: this.#deps.runPollMs ?? 1000, owner: caller.user, source: 'run', launchDirs: 1, degraded: null, limited: null, walking: false, ...(this.#store.node !== null ? { poller: this.#store.node } : {})
    }))
    return [...roots, ...runs]
  }

  async add (caller: Caller, req: AddRequest): Promise<WatchView> {
    if (!isAbsolute(req.root)) throw nfsError('NFS_ERR_INVALID_PATH', [`${JSON.stringify(req.root.slice(0, 200))}: a watch root must be absolute`])
    const limits = this.#deps.config.limits
    const intervalMs = req.intervalMs ?? (caller.isAdmin ? 1000 : Math.max(1000, limits.minPollIntervalMs))
    if (!caller.isAdmin && intervalMs < limits.minPollIntervalMs) throw nfsError('NFS_ERR_LIMIT', [`limits.minPollIntervalMs (${limits.minPollIntervalMs}): asked for ${intervalMs} ms`])
    const root = await resolveRoot(caller, req.root)
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
    if (this.#walks.roots.has(root)) throw nfsError('NFS_ERR_WATCH_EXISTS', [root])
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
    this.#walks.roots.set(root, r)
    // In a cluster the adding node polls it (claimed in the same transaction), unless it is fenced right now.
    if (this.#store.mine(root)) await this.#walks.ensureStarted(r)
    this.#syncRuns()
    // In a cluster every node announces it from the shared roots' feed, this one too (events.ts, follow).
    if (this.#store.node === null) this.#deps.events.publish(watchEvent({ op: 'added', watch: stored }))
    return this.#views.view(r)
  }

  async remove (caller: Caller, rootArg: string): Promise<void> {
    const root = isAbsolute(rootArg) ? await realpath(rootArg).catch(() => resolve(rootArg)) : rootArg
    const r = this.#walks.roots.get(root) ?? this.#walks.roots.get(rootArg)
    if (r === undefined || (!caller.isAdmin && r.source === 'api' && r.uid !== caller.uid)) throw nfsError('NFS_ERR_WATCH_NOT_FOUND', [JSON.stringify(rootArg.slice(0, 200))])
    if (r.source === 'config') throw nfsError('NFS_ERR_FORBIDDEN', [`${r.root} is watched by the config file; remove it there and reload`])
    await this.#store.remove(r.root)
    await this.#walks.stopRoot(r.root)
    this.#syncRuns()
    if (this.#store.node === null) this.#deps.events.publish(watchEvent({ op: 'removed', watch: { root: r.root, user: r.owner, workspace: r.workspace } }))
  }

  /** SIGHUP: start the config roots that are new or changed, stop the ones gone. API roots stay. */
  async reload (config: Config): Promise<void> {
    const next = new Map<string, Root>()
    for (const w of config.watch) { const r = await this.#walks.fromConfig(w); next.set(r.root, r) }
    for (const r of [...this.#walks.roots.values()]) {
      if (r.source !== 'config') continue
      const n = next.get(r.root)
      if (n === undefined || JSON.stringify(n) !== JSON.stringify(r)) await this.#walks.stopRoot(r.root)
    }
    for (const r of next.values()) {
      if (this.#walks.roots.has(r.root)) continue
      this.#walks.track(r)
    }
    // In a cluster, a config root dropped here may still be a shared one: list it again as such.
    if (this.#store.node !== null) this.#reconcile()
    await this.#roster
    this.#syncRuns()
    await this.#syncing
  }

  async stop (): Promise<void> {
    this.#unsubscribe()
    this.#unsubscribeRoots()
    await this.#roster
    await this.#syncing
    await this.watcher.stop()
    await this.#walks.stop()
  }
}
