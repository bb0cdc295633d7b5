// The monitor: reconciles the ledger at start and then, on a timer, ends runs whose process, session or Slurm job is
// gone, expires armed runs past their TTL, retries failed revokes, prunes old terminal runs and archives settled ones. The watcher makes
// most ends immediate; the monitor is the floor that holds when no file event arrives (a SIGKILL, a compute node).
// Its work runs in per-user lanes (lanes.ts): the checks of one user's runs, and their revokes, one after another,
// each user independent of the others. A revoke can take as long as a child's deadline (a cleanup `find` runs as the
// run's owner, who can stop it), so a pass never waits for revokes: it queues them in their user's lane, and the next
// pass skips a user whose lane is still busy. One user's stuck work delays no other user's expiry, end or revoke.
import { isTerminal, type RunRecord } from '../types.js'
import type { EventBus } from '../events.js'
import type { Logger } from '../logger.js'
import type { RunLedger } from '../store/run-ledger.js'
import { Lanes } from './lanes.js'
import type { RunOwnership } from './ownership.js'
import type { Revoker } from './revoker.js'
import type { EndRequest, EndState, RunChecks, RunLifecycle } from './service.js'
import { intentPending, needsOwner } from './run-rules.js'
import type { Probes } from './probes.js'
import { Archiving } from './archiving.js'
import { RunCheck } from './run-check.js'
import { SlurmAsks } from './slurm-asks.js'

export { INTENT_UNANSWERED } from './run-check.js'

export interface MonitorOptions {
  intervalMs: number
  retentionDays: number
  /** how long reconcile waits for the revokes it started before it resolves anyway; default STARTUP_REVOKE_WAIT_MS */
  startupRevokeWaitMs?: number
}

export const STARTUP_REVOKE_WAIT_MS = 10_000

/** What the monitor works with, handed over by RunManager.createMonitor: it never reaches through the manager. */
export interface MonitorDeps {
  ledger: RunLedger
  revoker: Revoker
  /** the lifecycle's own steps: a start seen, an end whose revoke the monitor queues itself */
  lifecycle: Pick<RunLifecycle, 'markStarted' | 'hostHolds'> & {
    /** is this node's arm of the run placing it now (RunManager.provisioning) */
    provisioning: (runId: string) => boolean
    endWithoutRevoke: (runId: string, state: EndState, reason: string, exit?: EndRequest, onlyIf?: (run: RunRecord) => boolean, decided?: (run: RunRecord) => void) => Promise<RunRecord>
  }
  events: EventBus
  ownership: RunOwnership
  probes: Probes
  clock: () => Date
  /** this node's host: the head's host when a run's pid and session lock are this node's to read */
  host: string
  logger: Logger
}

export class Monitor implements RunChecks {
  readonly #deps: MonitorDeps
  readonly #log: Logger
  readonly #opts: MonitorOptions
  #timer: NodeJS.Timeout | null = null
  // Passes ended with the revokes they queued (metrics): a test that counts revokes waits for passes, not for time.
  #passes = 0
  // Passes started: a check's reading is stamped with it (run-check.ts counts the interval between dead readings).
  #started = 0
  /** passes ended whose revokes are still being waited for (#pass) */
  #uncounted = 0
  #counting: Promise<void> | null = null
  // Housekeeping of a pass (records kept in memory, pruning) runs one at a time; the lanes do the rest.
  #housekeeping: Promise<void> | null = null
  readonly #checkLanes: Lanes
  readonly #revokeLanes: Lanes
  // What one check of a run decides (run-check.ts): a run must look dead on two checks in a row before it is ended.
  readonly #runCheck: RunCheck
  // One check of a run at a time: the timer's pass and the watcher's checkRun must not both count a dead reading.
  readonly #checking = new Map<string, Promise<void>>()
  readonly #slurm: SlurmAsks
  #unfollow: (() => void) | null = null
  readonly #archiving: Archiving

  constructor (deps: MonitorDeps, opts: MonitorOptions) {
    this.#deps = deps
    this.#log = deps.logger.child({ room: 'monitor' })
    this.#opts = opts
    const onError = (user: string, err: unknown): void => this.#log.error({ user, err }, 'monitor lane failed')
    this.#checkLanes = new Lanes(onError)
    this.#revokeLanes = new Lanes(onError)
    this.#archiving = new Archiving(deps.ledger, this.#log)
    this.#runCheck = new RunCheck(deps, this.#log, async (...end) => { await this.#end(...end) })
    this.#slurm = new SlurmAsks(deps.probes, this.#log, async runId => { await this.#checkOnce(runId, false) })
  }

  start (): void {
    if (this.#timer !== null) return
    // A run ended elsewhere (an explicit revoke on a node that does not own it, CLUSTER.md) reaches its owner as a
    // ledger change: its revoke is queued at once rather than at the next pass. On one node the change is this
    // node's own end, whose revoke is already under way (Revoker.revoke runs once per run at a time).
    this.#unfollow = this.#deps.ledger.onChange(c => {
      const run = this.#deps.ledger.get(c.runId)
      if (run !== undefined && this.#mine(run) && this.#deps.revoker.isDue(run, this.#deps.clock())) this.#queueRevoke(run.user)
    })
    this.#timer = setInterval(() => {
      this.#pass(false).catch((err: unknown) => this.#log.error({ err }, 'monitor pass failed'))
    }, this.#opts.intervalMs)
    this.#timer.unref()
  }

  async stop (): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    this.#unfollow?.()
    this.#unfollow = null
    await Promise.all([this.idle(), this.#housekeeping, this.#slurm.idle()])
    // A last try for records the revoke path kept in memory (a full disk); what still fails is redone after a start.
    await this.#safe('-', () => this.#deps.revoker.retryRecords())
  }

  /** One pass, waited for to its end: every user's checks and every revoke due, those it started included. */
  async tick (): Promise<void> {
    await this.#pass(false)
    await this.#revokeLanes.idle()
  }

  /** Resolves when no check or revoke is in progress (after reconcile: once its revokes are done too). */
  async idle (): Promise<void> {
    await Promise.all([this.#checkLanes.idle(), this.#revokeLanes.idle()])
  }

  /**
   * Reconcile at start: the same pass, with no grace for runs found dead (the daemon was down meanwhile). Resolves
   * once every run's state is decided and the revokes that follow are done, or after `startupRevokeWaitMs` of them:
   * they usually take moments, and then a client's first answer already reflects them, but a user whose cleanup is
   * stuck (until its child's deadline, again on every retry) must not keep the daemon from serving everyone else.
   * Whatever is still running then goes on in its user's lane.
   */
  async reconcile (): Promise<void> {
    const { ledger } = this.#deps
    // A run whose provisioning was interrupted by the crash never reached its caller: it ends here.
    for (const run of ledger.all()) {
      // Only this node's: another node's run may be provisioning right now.
      if (this.#mine(run) && intentPending(run)) {
        await this.#safe(run.runId, () => this.#end(run, 'failed', 'provisioning interrupted by a daemon restart'))
      }
    }
    await this.#pass(true)
    let timer: NodeJS.Timeout | undefined
    const waited = new Promise<void>(resolve => { timer = setTimeout(resolve, this.#opts.startupRevokeWaitMs ?? STARTUP_REVOKE_WAIT_MS) })
    await Promise.race([this.#revokeLanes.idle(), waited])
    clearTimeout(timer)
    this.#log.info({ runs: ledger.all().length, usersStillRevoking: this.#revokeLanes.size }, 'reconciled')
  }

  /** Check one live run now (the watcher calls this on a file event); serialised with the timer's pass. */
  async checkRun (runId: string): Promise<void> {
    const run = this.#deps.ledger.get(runId)
    if (run === undefined || isTerminal(run.state)) return
    await this.#checkOnce(runId, false)
  }

  async #checkOnce (runId: string, immediate: boolean, launchedBy: number | null = null): Promise<void> {
    const prev = this.#checking.get(runId) ?? Promise.resolve()
    const next = prev.then(async () => {
      // Re-read: the run may have ended while this check waited for the previous one.
      const run = this.#deps.ledger.get(runId)
      if (run === undefined || isTerminal(run.state)) return
      const reading = { launchedBy, passes: () => this.#started }
      await this.#safe(runId, () => this.#runCheck.check(run, this.#deps.clock(), immediate, reading))
    })
    this.#checking.set(runId, next)
    try {
      await next
    } finally {
      if (this.#checking.get(runId) === next) this.#checking.delete(runId)
    }
  }

  /** Is the run this node's to probe, end and revoke (RunOwnership: on one node, every run)? */
  #mine (run: RunRecord): boolean {
    return this.#deps.ownership.owns(run)
  }

  async #safe (runId: string, fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn()
    } catch (err) {
      this.#log.error({ runId, err }, 'monitor step failed')
    }
  }

  /** Start every user's checks (a busy lane gets one more round) and queue the due revokes; resolves when the checks are done. */
  async #pass (immediate: boolean): Promise<void> {
    const { ledger, clock } = this.#deps
    const pass = ++this.#started
    // Records the revoke path kept in memory while the disk was full go out first, once it has room again.
    await this.#housekeep(() => this.#deps.revoker.retryRecords())
    // Slurm is asked about the jobs of this node's live runs off the pass (slurm-asks.ts).
    this.#slurm.ask(ledger.all().filter(r => !isTerminal(r.state) && r.slurmJobId !== null && this.#mine(r)))
    const users = new Set<string>()
    for (const run of ledger.all()) if (!isTerminal(run.state) && this.#mine(run)) users.add(run.user)
    const checks = [...users].map(user => this.#checkLanes.kick(user, () => this.#checkUser(user, immediate, pass)))
    for (const run of this.#deps.revoker.due(clock())) this.#queueRevoke(run.user)
    await Promise.all(checks)
    this.#runCheck.forgetEnded()
    await this.#housekeep(() => this.#prune(clock()))
    await this.#housekeep(() => this.#release())
    // One wait at a time, whatever the number of passes: a user who keeps some revoke lane busy for good (a child held
    // to its deadline, pass after pass) must not pile up a pending promise per pass. Passes ended while it waits are
    // counted with it, once no lane runs: the revokes they queued have ended too.
    this.#uncounted++
    this.#counting ??= this.#revokeLanes.idle().then(() => {
      this.#passes += this.#uncounted
      this.#uncounted = 0
      this.#counting = null
    })
  }

  /** passes ended so far, each counted once the revokes it queued have ended too */
  get passes (): number { return this.#passes }

  async #housekeep (fn: () => Promise<void>): Promise<void> {
    while (this.#housekeeping !== null) await this.#housekeeping
    this.#housekeeping = this.#safe('-', fn).finally(() => { this.#housekeeping = null })
    await this.#housekeeping
  }

  async #checkUser (user: string, immediate: boolean, pass: number): Promise<void> {
    for (const run of this.#deps.ledger.all()) {
      if (run.user !== user || isTerminal(run.state) || !this.#mine(run)) continue
      await this.#checkOnce(run.runId, immediate, pass)
    }
  }

  #queueRevoke (user: string): void {
    void this.#revokeLanes.kick(user, () => this.#revokeUser(user))
  }

  /** The user's due revokes, one after another, until none is due (a failed one waits for its retry time). */
  async #revokeUser (user: string): Promise<void> {
    const tried = new Set<string>()
    for (;;) {
      const next = this.#deps.revoker.due(this.#deps.clock()).filter(r => r.user === user && !tried.has(r.runId))
      if (next.length === 0) return
      for (const run of next) {
        tried.add(run.runId)
        await this.#safe(run.runId, () => this.#deps.revoker.revoke(run.runId, false))
      }
    }
  }

  /**
   * End a run here, and queue its revoke in its user's lane. Its local target's removal starts as soon as the end is
   * decided, beside the end's write (Revoker.startEarly): the end's fsync no longer comes before the run dir goes.
   */
  async #end (run: RunRecord, state: EndState, reason: string, exit: EndRequest = {}, onlyIf?: (run: RunRecord) => boolean): Promise<void> {
    const ended = await this.#deps.lifecycle.endWithoutRevoke(run.runId, state, reason, exit, onlyIf, this.#early)
    if (isTerminal(ended.state)) this.#queueRevoke(run.user)
  }

  // Not while the user's revoke lane is busy: the lane's removal (a cleanup child as the user) and an early one would
  // then run side by side, and one user's removals go one at a time (a stuck one must only ever delay their own).
  readonly #early = (rec: RunRecord): void => {
    if (isTerminal(rec.state) && !this.#revokeLanes.busy(rec.user)) this.#deps.revoker.startEarly(rec)
  }

  /**
   * The owner keys this node still holds for runs that need no owner (a release right after the revoke failed, or the
   * run was revoked by a daemon that did not release): given up here, one pass after another until etcd takes it.
   */
  async #release (): Promise<void> {
    const { ledger, ownership, revoker } = this.#deps
    if (ownership.release === undefined || ownership.ownerOf === undefined) return
    for (const r of ledger.all()) {
      if (!needsOwner(r) && ownership.ownerOf(r.runId) === ownership.node) await revoker.releaseDone(r.runId)
    }
  }

  async #prune (now: Date): Promise<void> {
    const { ledger } = this.#deps
    const horizon = now.getTime() - this.#opts.retentionDays * 86_400_000
    const old = ledger.all().filter(r =>
      // Its owner's to prune, or anyone's once no node owns it (its node left; a terminal, revoked run is never adopted).
      (this.#mine(r) || this.#deps.ownership.ownerOf?.(r.runId) === null) && isTerminal(r.state) && r.endedAt !== null && Date.parse(r.endedAt) < horizon &&
      Object.values(r.targets).every(t => t === undefined || t.state === 'revoked'))
    if (old.length > 0) {
      const n = await ledger.remove(old.map(r => r.runId))
      this.#log.info({ pruned: n }, 'pruned terminal runs past retention')
    }
    await this.#archiving.pass(now, this.#opts.retentionDays, r => this.#mine(r) || this.#deps.ownership.ownerOf?.(r.runId) === null)
  }
}
