// The run lifecycle: provision (write-ahead, all or nothing across targets), start, end, revoke. The API, the watcher
// and the PTY host all come here; only this room calls the targets.
import { lstat } from 'node:fs/promises'
import { isAbsolute } from 'node:path'
import type { Target, TargetStatus } from '../../adapters/types.js'
import { can, PERSONAL } from '../rules/access.js'
import type { Config } from '../config.js'
import { isCoded, nfsError } from '../errors.js'
import type { EventBus } from '../events.js'
import type { Logger } from '../logger.js'
import { resolveSecrets, userScope, workspaceScope } from '../rules/resolve.js'
import type { SecretValue } from '../secret-value.js'
import type { AuditLog } from '../store/audit-log.js'
import type { SecretsStore } from '../store/secrets-store.js'
import { isSettled } from '../store/run-ledger.js'
import { isTerminal, TARGET_NAMES, type Caller, type RunRecord, type RunState, type TargetName } from '../types.js'
import { autoRunId, newRunId, newSessionId } from './ids.js'
import { bindToJob, canTransition, stateForExit } from './run-rules.js'
import type { Probes } from './probes.js'
import type { DeferredLedger } from './deferred-records.js'
import { Revoker, type RevokeObserver } from './revoker.js'
import type { CreateRunRequest, CreatedRun, EndRequest, EndState, RunLifecycle, RunView } from './service.js'
import { withRun } from './transition.js'
import { sessionAlive } from './liveness/session.js'
import { headHere } from './liveness/reach.js'
import { intentRecord, provisionRun } from './provision.js'
import { LiveRunQuota, ownsRun } from './quota.js'
import { Monitor, type MonitorOptions } from './monitor.js'
import { localOwnership, type RunOwnership } from './ownership.js'
import { sweepTargets } from './sweep.js'
import { awaitOwnerRevoke, ownerAnswered, OWNER_REVOKE_WAIT_MS } from './owner-wait.js'
import { checkRerun } from './rerun.js'
import { awaitCommandGone, commandGoneBoundMs, markCommandGone, type CommandWait } from './command-gone.js'

export interface RunObserver extends RevokeObserver {
  provisioned (target: TargetName, ok: boolean): void
}

export interface RunManagerDeps {
  config: Config
  /** the run ledger, wrapped so that the revoke path's records can wait for a full disk (DeferredRecords) */
  ledger: DeferredLedger
  store: SecretsStore
  audit: AuditLog
  events: EventBus
  targets: ReadonlyMap<TargetName, Target>
  logger: Logger
  clock: () => Date
  host: string
  probes: Probes
  observer?: RunObserver
  /** which runs this node answers for; default: all of them (one node, localOwnership) */
  ownership?: RunOwnership
  /** how long an end on a node that does not own the run waits for its owner's revoke (owner-wait.ts) */
  ownerRevokeWaitMs?: number
}

/** Something that hosts a run's process and must stop it before its secrets go (launched runs). */
export interface RunHost {
  stop (runId: string): Promise<void>
  /** The host still holds the run's command, alive or just gone: it ends the run itself, with the command's status. */
  holds (runId: string): boolean
}

export class RunManager implements RunLifecycle {
  // Private: the doors see the lifecycle through RunLifecycle and RunQueries (service.ts), the monitor gets what it
  // needs from createMonitor, and nothing reaches through to the ledger, store or targets.
  readonly #deps: RunManagerDeps
  readonly #ownership: RunOwnership
  /** the runs room's own (the monitor, tests); not part of any door's face */
  readonly revoker: Revoker
  #host: RunHost | null = null
  readonly #log: Logger
  readonly #quota: LiveRunQuota
  readonly #provisioning = new Set<string>()
  readonly #commandWait: CommandWait

  constructor (deps: RunManagerDeps) {
    this.#deps = deps
    this.#ownership = deps.ownership ?? localOwnership(deps.host)
    this.#log = deps.logger.child({ room: 'runs' })
    this.#quota = new LiveRunQuota(deps.config.limits.liveRunsPerUser)
    this.#commandWait = {
      ledger: deps.ledger,
      node: this.#ownership.node,
      // One node: every launched run is this node's own, never waited for.
      nodeAlive: n => this.#ownership.nodeAlive?.(n) ?? false,
      clock: deps.clock,
      boundMs: commandGoneBoundMs(deps.config.launch.killGraceSeconds),
      log: this.#log
    }
    this.revoker = new Revoker({
      ledger: deps.ledger,
      targets: deps.targets,
      audit: deps.audit,
      logger: this.#log,
      clock: deps.clock,
      retry: { initialMs: deps.config.runs.revokeRetryInitialMs, maxMs: deps.config.runs.revokeRetryMaxMs },
      ownership: this.#ownership,
      // The command first, then its secrets: as RunManager.revoke does on one node, for ends that come from elsewhere.
      // A command another node's PTY host runs is stopped there: its mark on the ledger is waited for (bounded).
      beforeRevoke: async run => {
        if (this.#host?.holds(run.runId) === true) await this.#host.stop(run.runId)
        else await awaitCommandGone(this.#commandWait, run)
      },
      ...(deps.observer !== undefined ? { observer: deps.observer } : {})
    })
  }

  setHost (host: RunHost): void {
    this.#host = host
  }

  /** A launched run already ended: its command is gone too (command-gone.ts; the PTY host calls this). */
  async commandGone (runId: string, exit: { exitCode: number | null, signal: string | null }): Promise<void> {
    await markCommandGone(this.#commandWait, runId, exit)
  }

  /** Is a launched run's end its host's to record (see RunHost.holds)? */
  hostHolds (runId: string): boolean {
    return this.#host?.holds(runId) ?? false
  }

  #visible (caller: Caller, runId: string): RunRecord {
    const run = this.#deps.ledger.get(runId)
    // Another user's run is reported as absent, so ids cannot be probed.
    if (run === undefined || (!ownsRun(caller, run) && !caller.isAdmin)) throw nfsError('NFS_ERR_RUN_NOT_FOUND', [JSON.stringify(runId.slice(0, 40))])
    return run
  }

  #targetsFor (req: CreateRunRequest): TargetName[] {
    const names = req.targets !== undefined && req.targets.length > 0 ? req.targets : this.#deps.config.runs.defaultTargets
    for (const t of names) {
      if (!(TARGET_NAMES as readonly string[]).includes(t) || !this.#deps.targets.has(t)) throw nfsError('NFS_ERR_INVALID_TARGET', [JSON.stringify(t)])
    }
    return [...new Set(names)]
  }

  async #checkLaunchDir (caller: Caller, dir: string): Promise<void> {
    if (!isAbsolute(dir)) throw nfsError('NFS_ERR_INVALID_PATH', [`${JSON.stringify(dir.slice(0, 200))}: launchDir must be absolute`])
    let st
    try {
      st = await lstat(dir)
    } catch {
      throw nfsError('NFS_ERR_INVALID_PATH', [`${JSON.stringify(dir.slice(0, 200))}: no such directory`])
    }
    if (!st.isDirectory()) throw nfsError('NFS_ERR_INVALID_PATH', [`${JSON.stringify(dir.slice(0, 200))}: not a directory`])
    // Watching and reading a launch dir on a user's behalf: it must be theirs, or one they can write through a group.
    const mine = st.uid === caller.uid || caller.uid === 0
    const viaGroup = (st.mode & 0o020) !== 0 && caller.gids.includes(st.gid)
    if (!mine && !viaGroup && (st.mode & 0o002) === 0) throw nfsError('NFS_ERR_FORBIDDEN', [`launch dir ${dir} is not yours`])
  }

  /**
   * SPEC 11: a run is tied only to a job Slurm itself records as the caller's. Otherwise anyone could keep a run (and
   * its TTL-free secrets) alive on someone else's job, or make the daemon ask Slurm about made-up ids. A job Slurm
   * does not know and a job of another user get the same answer, so the check tells nothing about others' jobs.
   */
  async #checkSlurmJob (caller: Caller, jobId: string): Promise<void> {
    if (await this.#deps.probes.slurmOwner(jobId) !== caller.uid) throw nfsError('NFS_ERR_FORBIDDEN', [`Slurm job ${jobId} is not a job of yours`])
  }

  /** Tie an armed run to its sbatch-hosted head's job: no TTL from then on; the job's end (or Nextflow's) ends it. */
  async bindSlurmJob (caller: Caller, runId: string, jobId: string): Promise<RunView> {
    const run = this.#visible(caller, runId)
    if (run.uid !== caller.uid) throw nfsError('NFS_ERR_FORBIDDEN', [`run ${runId} is not yours`])
    await this.#checkSlurmJob(caller, jobId)
    // One compare-and-swap against the TTL's expiry (which re-checks the TTL in its own write): exactly one wins.
    const bound = await withRun(this.#deps.ledger, runId, r => bindToJob(r, jobId))
    this.#log.info({ runId, slurmJobId: jobId }, 'run bound to its Slurm job')
    return view(bound)
  }

  /** Is the run being provisioned right now (placed or about to be, its intent perhaps not yet in the ledger)? */
  provisioning (runId: string): boolean {
    return this.#provisioning.has(runId)
  }

  async create (caller: Caller, req: CreateRunRequest): Promise<CreatedRun> {
    // The slot is held while provisioning; once the intent is in the ledger the run counts there.
    const release = this.#quota.reserve(caller, () => this.#deps.ledger.all())
    try {
      return await this.#create(caller, req)
    } finally {
      release()
    }
  }

  async #create (caller: Caller, req: CreateRunRequest): Promise<CreatedRun> {
    const { store, ledger, clock, config, audit, probes } = this.#deps
    if (req.secretsFile !== undefined) req = await checkRerun(caller, req, ledger, this.#deps.targets)
    const wsName = req.workspace === undefined || req.workspace === '' ? PERSONAL : req.workspace
    const ws = wsName === PERSONAL ? null : store.getWorkspace(wsName)
    if (wsName !== PERSONAL && ws === undefined) throw nfsError('NFS_ERR_WORKSPACE_NOT_FOUND', [JSON.stringify(wsName.slice(0, 80))])
    if (ws != null && !can(caller, 'runs.launch', ws)) throw nfsError('NFS_ERR_FORBIDDEN', [`starting runs in workspace ${ws.name} needs the launch role`])
    const targets = this.#targetsFor(req)
    await this.#checkLaunchDir(caller, req.launchDir)
    if (req.slurmJobId !== undefined) await this.#checkSlurmJob(caller, req.slurmJobId)

    // The launch dir's history (and the process's start time) are read in the thread pool while the event loop
    // resolves and decrypts below: the arm waits for the longer of the two, not their sum (issue 18).
    const pid = req.pid ?? (req.mode === 'run' ? caller.pid : null)
    const probed = Promise.all([
      pid !== null && pid > 0 ? probes.processStart(pid) : null,
      probes.historyMark(req.launchDir, caller.uid)
    ])
    // Awaited below; a resolution that fails first must not leave it unhandled.
    probed.catch(() => {})
    // Resolution: every workspace secret, the user's own winning by name; --only narrows it, and a name that is
    // not there fails before anything is placed.
    const resolved = resolveSecrets(store.listSecrets([userScope(caller.user)]), ws != null ? store.listSecrets([workspaceScope(ws.name)]) : [])
    let chosen = resolved
    if (req.only !== undefined && req.only.length > 0) {
      const byName = new Map(resolved.map(r => [r.name, r]))
      chosen = []
      for (const name of new Set(req.only)) {
        const r = byName.get(name)
        if (r === undefined) throw nfsError('NFS_ERR_UNKNOWN_SECRET', [JSON.stringify(name.slice(0, 100))])
        chosen.push(r)
      }
    } else if (req.names !== undefined) {
      // Here, not in the CLI: whatever client asks with names, a missing one stops the run before anything is placed.
      const wanted = new Set(req.names)
      chosen = resolved.filter(r => wanted.has(r.name))
      const have = new Set(chosen.map(r => r.name))
      const missing = [...wanted].filter(n => !have.has(n)).sort()
      if (missing.length > 0 && req.allowMissing !== true) throw nfsError('NFS_ERR_SECRET_MISSING', [missing.join(', ')])
    }
    const sealed = store.readValues(chosen.map(r => ({ scope: r.scope, name: r.name })))
    const values = new Map<string, SecretValue>()
    for (const r of chosen) values.set(r.name, sealed.get(`${r.scope}\0${r.name}`)!)

    const now = clock()
    const runId = req.mode === 'auto' && req.autoSessionId !== undefined && req.runName !== undefined ? autoRunId(req.launchDir, req.autoSessionId, req.runName) : newRunId()
    // An auto-run's id is its start's (ids.ts): the same start seen again after its run left the hot set (a restart
    // while a killed Nextflow's history still says running) must not place its secrets a second time. The ledger's
    // insert sees only the hot set; a random id never meets an archived one, so only these ids are looked up.
    if (req.mode === 'auto' && this.#deps.ledger.archive !== undefined && await this.#deps.ledger.archive.find(runId) !== undefined) {
      throw nfsError('NFS_ERR_CONFLICT', [`run ${runId} already exists (archived)`])
    }
    const sessionId = newSessionId()
    const ttl = req.ttlSeconds ?? config.runs.defaultTtlSeconds
    const [pidStart, historyMark] = await probed
    const record = intentRecord({
      runId, sessionId, caller, workspace: wsName, host: this.#deps.host, req, names: [...values.keys()], targets, now, ttlSeconds: ttl, pid, pidStart, historyMark, node: this.#ownership.node
    })
    // Nextflow before 24.04.2 expands `$` in the env file its tasks source; the version is known only once it logs it.
    const dollarNames = targets.includes('hpc') ? [...values].filter(([, v]) => v.contains('$')).map(([n]) => n) : []
    if (dollarNames.length > 0) record.dollarNames = dollarNames
    const auditEntry = { action: 'run.provision', actor: caller.user, runId, workspace: wsName, detail: { targets: targets.join(','), secrets: values.size } }
    const log = this.#log.child({ runId })
    log.info({ user: record.user, workspace: wsName, mode: record.mode, targets, secrets: record.names.length }, 'provisioning')
    // Until its intent is in the ledger a run's dirs exist only here: the target sweep must not take them for the
    // leftovers of a crash (it runs in the background from the start; launches right after a start raced it).
    this.#provisioning.add(runId)
    const { run, env } = await provisionRun({
      ledger,
      audit,
      // Counted again with the intent's insert: in a cluster the reservation above sees only this node's arms.
      ...(caller.isAdmin ? {} : { liveLimit: config.limits.liveRunsPerUser }),
      targets: this.#deps.targets,
      log: this.#log,
      ...(this.#deps.observer !== undefined ? { observe: this.#deps.observer.provisioned.bind(this.#deps.observer) } : {}),
      undo: async (id, untouched, reason) => {
        await this.#markUntouched(id, untouched)
        await this.#endAndRevoke(id, 'failed', reason, {})
      }
    }, record, targets, values, auditEntry).finally(() => { this.#provisioning.delete(runId) })
    // In memory at once; the store writes it later, off this path (see SecretsStore.markUsed).
    await store.markUsed(chosen.map(r => ({ scope: r.scope, name: r.name })), now.toISOString())
    log.info({ state: run.state }, 'provisioned')
    return { runId, sessionId, env, secrets: run.names, targets }
  }

  async #markUntouched (runId: string, names: TargetName[]): Promise<void> {
    if (names.length === 0) return
    await this.revoker.record(runId, 'untouched targets', r => {
      for (const n of names) {
        const t = r.targets[n]
        if (t === undefined || t.state !== 'provisioning') continue
        t.state = 'revoked'
        t.revokedAt = this.#deps.clock().toISOString()
      }
      return r
    }, { asOwner: true })
  }

  async list (caller: Caller, all: boolean): Promise<RunView[]> {
    const mine = (r: RunRecord): boolean => ownsRun(caller, r) || caller.isAdmin
    // The hot set first, then the archive: a run moved meanwhile was in the one or is already in the other (its
    // append is durable before it leaves the hot set); one in both (a crash between the two) counts once, hot.
    const hot = this.#deps.ledger.all().filter(mine)
    // Without --all a settled run is not listed, and every archived run is settled: the archive is not read.
    if (!all || this.#deps.ledger.archive === undefined) return hot.filter(r => all || !isSettled(r)).map(view)
    const inHot = new Set(hot.map(r => r.runId))
    const archived = (await this.#deps.ledger.archive.list()).filter(r => mine(r) && !inHot.has(r.runId))
    return [...archived, ...hot].map(view)
  }

  async get (caller: Caller, runId: string): Promise<RunView> {
    return view(await this.#visibleAnywhere(caller, runId))
  }

  /** #visible, or the run from the archive when it has left the hot set (the same answer for another user's run). */
  async #visibleAnywhere (caller: Caller, runId: string): Promise<RunRecord> {
    const archive = this.#deps.ledger.archive
    if (archive === undefined || this.#deps.ledger.get(runId) !== undefined) return this.#visible(caller, runId)
    // Not hot: moved before the get above, so its append is already durable and find sees it.
    const run = await archive.find(runId)
    if (run === undefined || (!ownsRun(caller, run) && !caller.isAdmin)) throw nfsError('NFS_ERR_RUN_NOT_FOUND', [JSON.stringify(runId.slice(0, 40))])
    return run
  }

  /** A live run seen starting (history line, log, PTY child): armed -> running, recording what identifies it. */
  async markStarted (runId: string, info: { runName?: string | null, pid?: number | null }): Promise<RunRecord | null> {
    const before = this.#deps.ledger.get(runId)
    if (before === undefined || isTerminal(before.state)) return null
    const pidStart = info.pid != null ? await this.#deps.probes.processStart(info.pid) : null
    const run = await withRun(this.#deps.ledger, runId, r => {
      if (isTerminal(r.state)) return null
      const changed = r.state === 'armed' || (info.runName != null && r.runName === null) || (info.pid != null && r.pid === null)
      if (!changed) return null
      if (r.state === 'armed') { r.state = 'running'; r.startedAt = this.#deps.clock().toISOString(); r.expiresAt = null }
      if (info.runName != null && r.runName === null) r.runName = info.runName
      if (info.pid != null && r.pid === null) { r.pid = info.pid; r.pidStart = pidStart }
      return r
    })
    if (before.state === 'armed' && run.state === 'running') {
      this.#log.info({ runId, runName: run.runName }, 'run started')
    }
    return run
  }

  /** End a live run (first end wins) and revoke it. Returns the record after the revoke attempt. */
  /** `onlyIf` is checked against the record inside the ledger's write: the end is dropped when it no longer holds. */
  async end (runId: string, state: EndState, reason: string, exit: EndRequest = {}, onlyIf?: (run: RunRecord) => boolean): Promise<RunRecord> {
    return await this.#endAndRevoke(runId, state, reason, exit, onlyIf)
  }

  /**
   * End a live run (first end wins) and leave the revoke to the caller: its targets are marked `revoking`, so it is
   * due at once (Revoker.due). The monitor uses this to queue revokes per user: a revoke can be as slow as a child's
   * deadline, and one user's must not hold up the pass that ends another user's runs. `onlyIf` as for end().
   */
  async endWithoutRevoke (runId: string, state: EndState, reason: string, exit: EndRequest = {}, onlyIf?: (run: RunRecord) => boolean): Promise<RunRecord> {
    return await this.#end(runId, state, reason, exit, onlyIf)
  }

  async #endAndRevoke (runId: string, state: EndState, reason: string, exit: EndRequest, onlyIf?: (run: RunRecord) => boolean): Promise<RunRecord> {
    const run = await this.#end(runId, state, reason, exit, onlyIf)
    // An end that did not apply (the run started, or was bound, meanwhile) leaves a live run's secrets alone.
    if (!isTerminal(run.state)) return run
    return await this.revoker.revoke(runId)
  }

  async #end (runId: string, state: EndState, reason: string, exit: EndRequest, onlyIf?: (run: RunRecord) => boolean): Promise<RunRecord> {
    const before = this.#deps.ledger.get(runId)
    if (before === undefined) throw nfsError('NFS_ERR_RUN_NOT_FOUND', [runId])
    // The end and the start of the revoke in one write: the targets that hold something are marked `revoking` here
    // (a terminal run's targets are revoked at the next start whatever they say). It is kept even when the disk is
    // full: revocation is idempotent and must not wait for the ledger (see revoker.ts).
    const run = await this.revoker.record(runId, 'end', r => {
      if (isTerminal(r.state) || !canTransition(r.state, state) || onlyIf?.(r) === false) return null
      r.state = state
      r.endedAt = this.#deps.clock().toISOString()
      r.endReason = reason
      if (exit.exitCode !== undefined) r.exitCode = exit.exitCode
      if (exit.signal !== undefined) r.signal = exit.signal
      for (const [name, t] of Object.entries(r.targets)) {
        if (t !== undefined && (t.state === 'provisioned' || t.state === 'provisioning') && this.#deps.targets.has(name as TargetName)) t.state = 'revoking'
      }
      return r
    })
    if (!isTerminal(before.state) && isTerminal(run.state)) {
      this.#log.info({ runId, state, reason }, 'run ended')
    }
    return run
  }

  async finish (caller: Caller, runId: string, end: EndRequest): Promise<RunView> {
    const run = await this.#visibleAnywhere(caller, runId)
    if (isTerminal(run.state)) return view(run)
    // A `-bg` Nextflow outlives its wrapper: while its session is alive the run stays; the monitor ends it later.
    // The pid and the session lock are read only on the head's own host (reach.ts).
    const here = headHere(run, this.#deps.host)
    if (await sessionAlive(this.#deps.probes, run, this.#deps.host, { pid: here, lock: here })) {
      const kept = await withRun(this.#deps.ledger, runId, r => {
        if (isTerminal(r.state)) return null
        r.exitCode = end.exitCode ?? null
        r.signal = end.signal ?? null
        r.pid = null
        r.pidStart = null
        return r
      })
      this.#log.info({ runId }, 'wrapper exited; the Nextflow session is still alive, keeping the run')
      return view(kept)
    }
    return view(await this.#ownersAnswer(await this.#endAndRevoke(runId, stateForExit(end.exitCode, end.signal), 'command exited', end)))
  }

  /**
   * An end (explicit revoke, wrapper's exit) on a node that does not own the run only records it; the owner revokes it
   * when the ledger change reaches it (CLUSTER.md "Ownership"), within milliseconds. The caller waits for that outcome
   * (owner-wait.ts), so `nf-secrets runs revoke` on any node says revoked (exit 0) as on the owner. On the owner, and
   * on one node, it answers at once. No owner (its node left, nobody adopted it yet): nobody to wait for.
   */
  async #ownersAnswer (run: RunRecord): Promise<RunRecord> {
    if (!isTerminal(run.state) || this.#ownership.owns(run) || ownerAnswered(run)) return run
    if (this.#ownership.ownerOf?.(run.runId) === null) {
      // No owner: its node left and nobody adopted it yet, or it needs none any more: its owner revoked it and gave
      // its key up a moment ago (cluster/ownership.ts release), which the `run` in hand, read before, does not show
      // yet. Answer with the record as the settled ledger has it, not with that stale one.
      await this.#deps.ledger.settle().catch(() => {})
      return this.#deps.ledger.get(run.runId) ?? run
    }
    return await awaitOwnerRevoke(this.#deps.ledger, run.runId, this.#deps.ownerRevokeWaitMs ?? OWNER_REVOKE_WAIT_MS) ?? run
  }

  async revoke (caller: Caller, runId: string): Promise<RunView> {
    const run = await this.#visibleAnywhere(caller, runId)
    // An archived run is settled: nothing left to end or revoke, the same answer as for a settled run still hot.
    if (this.#deps.ledger.get(runId) === undefined) return view(run)
    if (!isTerminal(run.state) && run.mode === 'launch' && this.#host !== null) await this.#host.stop(runId)
    return view(await this.#ownersAnswer(await this.#endAndRevoke(runId, 'killed', `revoked by ${caller.user}`, {})))
  }

  /** The monitor of this lifecycle, handed what it needs (it never reaches through the manager). */
  createMonitor (opts: MonitorOptions): Monitor {
    const { ledger, events, probes, clock, host, logger } = this.#deps
    return new Monitor({ ledger, events, probes, clock, host, logger, revoker: this.revoker, lifecycle: this, ownership: this.#ownership }, opts)
  }

  /** Remove what the targets hold of runs that are over or unknown (a crash before the intent): sweep.ts. */
  async sweep (): Promise<void> {
    const goneNode = this.#ownership.nodeGone?.bind(this.#ownership)
    await sweepTargets({ targets: this.#deps.targets, ledger: this.#deps.ledger, provisioning: id => this.provisioning(id), log: this.#log, ...(goneNode !== undefined ? { goneNode } : {}) })
  }

  run (runId: string): RunRecord | undefined {
    return this.#deps.ledger.get(runId)
  }

  async settle (): Promise<void> {
    await this.#deps.ledger.settle()
  }

  live (launchDir?: string): RunRecord[] {
    return this.#deps.ledger.all().filter(r => !isTerminal(r.state) && (launchDir === undefined || r.launchDir === launchDir))
  }

  localHeads (): RunRecord[] {
    return this.live().filter(r => headHere(r, this.#deps.host) && this.#ownership.owns(r))
  }

  hostedHere (): RunRecord[] {
    return this.live().filter(r => headHere(r, this.#deps.host))
  }

  onEnded (listener: (run: RunRecord) => void): () => void {
    return this.#deps.ledger.onChange(c => {
      if (c.run !== null && isTerminal(c.run.state) && (c.previous === null || !isTerminal(c.previous.state))) listener(c.run)
    })
  }

  hasTarget (name: string): boolean {
    return (TARGET_NAMES as readonly string[]).includes(name) && this.#deps.targets.has(name as TargetName)
  }

  async countsByState (): Promise<Partial<Record<RunState, number>>> {
    const out: Partial<Record<RunState, number>> = {}
    const hot = this.#deps.ledger.all()
    for (const r of hot) out[r.state] = (out[r.state] ?? 0) + 1
    // The archive's counts are read once and then kept in memory (store/run-archive.ts summaries).
    const archived = await this.#deps.ledger.archive?.summaries()
    if (archived !== undefined && archived.size > 0) {
      const inHot = new Set(hot.map(r => r.runId))
      for (const [id, s] of archived) if (!inHot.has(id)) out[s.state] = (out[s.state] ?? 0) + 1
    }
    return out
  }

  async targetStatus (): Promise<Record<string, TargetStatus>> {
    const out: Record<string, TargetStatus> = {}
    for (const [name, t] of this.#deps.targets) {
      try {
        out[name] = await t.status()
      } catch (err) {
        out[name] = { usable: false, detail: isCoded(err) ? err.code : 'status check failed' }
      }
    }
    return out
  }
}

export function view (run: RunRecord): RunView {
  const { version: _version, ...rest } = run
  return rest
}
