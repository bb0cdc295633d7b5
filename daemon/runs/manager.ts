// The run lifecycle: provision (write-ahead, all or nothing across targets), start, end, revoke. The API, the watcher
// and the PTY host all come here; only this room calls the targets.
import type { Target, TargetStatus } from '../../adapters/types.js'
import { nfsError } from '../errors.js'
import type { EventBus } from '../events.js'
import type { Logger } from '../logger.js'
import type { Config } from '../config.js'
import type { AuditLog } from '../store/audit-log.js'
import type { SecretsStore } from '../store/secrets-store.js'
import { isTerminal, TARGET_NAMES, type Caller, type RunRecord, type RunState, type TargetName } from '../types.js'
import { bindToJob, stateForExit } from './run-rules.js'
import { endRecord, startRecord, wrapperGoneRecord } from './record-changes.js'
import type { Probes } from './probes.js'
import type { DeferredLedger } from './deferred-records.js'
import { Revoker, type RevokeObserver } from './revoker.js'
import type { CreateRunRequest, CreatedRun, EndRequest, EndState, RunHost, RunLifecycle, RunView } from './service.js'
import { withRun } from './transition.js'
import { sessionAlive } from './liveness/session.js'
import { headHere } from './liveness/reach.js'
import { LiveRunQuota } from './quota.js'
import { Monitor, type MonitorOptions } from './monitor.js'
import { localOwnership, type RunOwnership } from './ownership.js'
import { sweepTargets } from './sweep.js'
import { ownersAnswer, OWNER_REVOKE_WAIT_MS } from './owner-wait.js'
import { awaitCommandGone, commandGoneBoundMs, markCommandGone, type CommandWait } from './command-gone.js'
import { checkSlurmJob, createRun, markUntouched } from './create-run.js'
import { listRuns, targetStatus, view, visible, visibleAnywhere } from './run-reads.js'
import { countsByState } from './run-counts.js'

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

  /** Tie an armed run to its sbatch-hosted head's job: no TTL from then on; the job's end (or Nextflow's) ends it. */
  async bindSlurmJob (caller: Caller, runId: string, jobId: string): Promise<RunView> {
    const run = visible(this.#deps.ledger, caller, runId)
    if (run.uid !== caller.uid) throw nfsError('NFS_ERR_FORBIDDEN', [`run ${runId} is not yours`])
    await checkSlurmJob(this.#deps.probes, caller, jobId)
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
    const { store, ledger, clock, config, audit, probes, observer } = this.#deps
    return await createRun({
      config,
      ledger,
      store,
      audit,
      targets: this.#deps.targets,
      clock,
      host: this.#deps.host,
      probes,
      node: this.#ownership.node,
      log: this.#log,
      ...(observer !== undefined ? { observe: observer.provisioned.bind(observer) } : {}),
      provisioning: this.#provisioning,
      undo: async (id, untouched, reason) => {
        await markUntouched(this.revoker, clock, id, untouched)
        await this.#endAndRevoke(id, 'failed', reason, {})
      }
    }, caller, req)
  }

  async list (caller: Caller, all: boolean): Promise<RunView[]> {
    return await listRuns(this.#deps.ledger, caller, all)
  }

  async get (caller: Caller, runId: string): Promise<RunView> {
    return view(await visibleAnywhere(this.#deps.ledger, caller, runId))
  }

  /** A live run seen starting (history line, log, PTY child): armed -> running, recording what identifies it. */
  async markStarted (runId: string, info: { runName?: string | null, pid?: number | null }): Promise<RunRecord | null> {
    const before = this.#deps.ledger.get(runId)
    if (before === undefined || isTerminal(before.state)) return null
    const pidStart = info.pid != null ? await this.#deps.probes.processStart(info.pid) : null
    const run = await withRun(this.#deps.ledger, runId, r => startRecord(r, info, pidStart, this.#deps.clock))
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
   * `decided` is called with the terminal record once it is decided, before it is written (UpdateOptions.decided).
   */
  async endWithoutRevoke (runId: string, state: EndState, reason: string, exit: EndRequest = {}, onlyIf?: (run: RunRecord) => boolean, decided?: (run: RunRecord) => void): Promise<RunRecord> {
    return await this.#end(runId, state, reason, exit, onlyIf, decided)
  }

  async #endAndRevoke (runId: string, state: EndState, reason: string, exit: EndRequest, onlyIf?: (run: RunRecord) => boolean): Promise<RunRecord> {
    const run = await this.#end(runId, state, reason, exit, onlyIf)
    // An end that did not apply (the run started, or was bound, meanwhile) leaves a live run's secrets alone.
    if (!isTerminal(run.state)) return run
    return await this.revoker.revoke(runId)
  }

  /** `decided`: UpdateOptions.decided, called with the end's record before it is written (a file ledger only). */
  async #end (runId: string, state: EndState, reason: string, exit: EndRequest, onlyIf?: (run: RunRecord) => boolean, decided?: (run: RunRecord) => void): Promise<RunRecord> {
    const before = this.#deps.ledger.get(runId)
    if (before === undefined) throw nfsError('NFS_ERR_RUN_NOT_FOUND', [runId])
    // The end and the start of the revoke in one write (record-changes.ts endRecord; a terminal run's targets are
    // revoked at the next start whatever they say). It is kept even when the disk is full: revocation is idempotent
    // and must not wait for the ledger (see revoker.ts).
    const hasTarget = (name: TargetName): boolean => this.#deps.targets.has(name)
    const run = await this.revoker.record(runId, 'end', r => endRecord(r, { state, reason, exit, onlyIf }, hasTarget, this.#deps.clock), decided !== undefined ? { decided } : {})
    if (!isTerminal(before.state) && isTerminal(run.state)) {
      this.#log.info({ runId, state, reason }, 'run ended')
    }
    return run
  }

  async finish (caller: Caller, runId: string, end: EndRequest): Promise<RunView> {
    const run = await visibleAnywhere(this.#deps.ledger, caller, runId)
    if (isTerminal(run.state)) return view(run)
    // A `-bg` Nextflow outlives its wrapper: while its session is alive the run stays; the monitor ends it later.
    // The pid and the session lock are read only on the head's own host (reach.ts).
    const here = headHere(run, this.#deps.host)
    if (await sessionAlive(this.#deps.probes, run, this.#deps.host, { pid: here, lock: here })) {
      const kept = await withRun(this.#deps.ledger, runId, r => wrapperGoneRecord(r, end))
      this.#log.info({ runId }, 'wrapper exited; the Nextflow session is still alive, keeping the run')
      return view(kept)
    }
    return view(await this.#ownersAnswer(await this.#endAndRevoke(runId, stateForExit(end.exitCode, end.signal), 'command exited', end)))
  }

  /** An end on a node that does not own the run waits for its owner's revoke (owner-wait.ts ownersAnswer). */
  async #ownersAnswer (run: RunRecord): Promise<RunRecord> {
    return await ownersAnswer(run, this.#deps.ledger, this.#ownership, this.#deps.ownerRevokeWaitMs ?? OWNER_REVOKE_WAIT_MS)
  }

  async revoke (caller: Caller, runId: string): Promise<RunView> {
    const run = await visibleAnywhere(this.#deps.ledger, caller, runId)
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
    return await countsByState(this.#deps.ledger)
  }

  async targetStatus (): Promise<Record<string, TargetStatus>> {
    return await targetStatus(this.#deps.targets)
  }
}
