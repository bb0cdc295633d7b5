// Removing a run's secrets from every target it touched: at least once, durably. Each target's state goes
// provisioned -> revoking -> revoked in the ledger; a failure becomes revoke_failed with a due time, retried with
// backoff until it succeeds, across restarts. The run's end already marks its targets `revoking` (one write, see
// RunManager), so a revoke right after an end touches the target first and writes once, after.
// Revocation is idempotent, so it never waits for the ledger: when a record cannot be written (a full state
// disk), the secrets are removed all the same, the new state is kept in memory (deferred-records.ts), and
// retryRecords() (the monitor's pass) writes it once space returns. A restart before that revokes again, which finds
// nothing and succeeds. Its events come from the ledger's change feed (events.ts), kept records included.
// Only the run's owner revokes (ownership.ts; CLUSTER.md "Ownership"): a run another node owns is left to it, and
// every write of a revoke is an owner's write, which a shared ledger refuses once this node no longer owns the run.
import type { Target, TargetRun } from '../../adapters/types.js'
import { isCoded, nfsError } from '../errors.js'
import type { Logger } from '../logger.js'
import type { DeferredLedger } from './deferred-records.js'
import type { UpdateOptions } from '../store/run-ledger.js'
import type { AuditEntry, AuditLog } from '../store/audit-log.js'
import type { RunRecord, TargetName } from '../types.js'
import { needsOwner, needsRevoke, retryDelayMs } from './run-rules.js'
import { localOwnership, type RunOwnership } from './ownership.js'
import { recordRun } from './transition.js'
import { failpoint } from '../failpoints.js'

export interface RevokeObserver {
  revoked (target: TargetName, ok: boolean, seconds: number): void
  /** a ledger record (or audit line) of the revoke path could not be written and is kept for a later write */
  deferred? (what: 'ledger' | 'audit'): void
}

export interface RevokerDeps {
  ledger: DeferredLedger
  targets: ReadonlyMap<TargetName, Target>
  audit: AuditLog
  logger: Logger
  clock: () => Date
  retry: { initialMs: number, maxMs: number }
  observer?: RevokeObserver
  /** which runs are this node's to revoke; default: all (one node) */
  ownership?: RunOwnership
  /**
   * Runs before a launched run's targets are revoked: stops its command if this node holds it (bounded by the stop's
   * grace period). A run ended on another node reaches its owner as a ledger change, and without this the revoke
   * ran beside the command's stop: the secrets went while the command still ran, unlike on one node.
   */
  beforeRevoke?: (run: RunRecord) => Promise<void>
}

/** A revoke step found the run no longer this node's: it stops there, quietly (its owner revokes it). */
class NotOwner extends Error {}

/** The targets whose removal may start as soon as an end is decided (startEarly): local, idempotent, unpaced. */
const EARLY_TARGET: TargetName = 'hpc'

/** One call of a target's revoke: what failed (null: nothing) and how long it took. Never rejects. */
interface Attempt { failure: unknown, seconds: number }

export function targetRun (run: RunRecord): TargetRun {
  return {
    runId: run.runId,
    sessionId: run.sessionId,
    user: run.user,
    uid: run.uid,
    gid: run.gid,
    workspace: run.workspace,
    launchDir: run.launchDir,
    host: run.host,
    names: run.names,
    ...(run.secretsFile !== undefined ? { secretsFile: run.secretsFile } : {})
  }
}

export class Revoker {
  readonly #deps: RevokerDeps
  // One revoke per run at a time in this process; a second caller waits for the first.
  readonly #inFlight = new Map<string, Promise<RunRecord>>()
  /** How many records were kept in memory because the disk refused them (ledger records and audit lines). */
  readonly deferredCounts = { ledger: 0, audit: 0 }

  readonly #ownership: RunOwnership
  // Early removals (startEarly) by run, each consumed by that run's revoke, which records its outcome; and the users
  // with one in flight: one each, so that a burst of one user's ends starts no more children (the monitor also starts
  // none while the user's revoke lane is busy: their removals go one at a time, as in the lane).
  readonly #early = new Map<string, Promise<Attempt>>()
  readonly #earlyUsers = new Set<string>()

  constructor (deps: RevokerDeps) {
    this.#deps = deps
    this.#ownership = deps.ownership ?? localOwnership('')
  }

  /** Does the run hold something in a target whose revoke is due now? Pure but for the clock handed in. */
  isDue (run: RunRecord, now: Date): boolean {
    if (run.endedAt === null) return false
    // for-in, not Object.values: due() asks this of every run in the hot ledger, a revoke's lane twice or more, and
    // the arrays it made were a large share of what a revoke allocated (issue 18). A record is plain JSON.
    for (const name in run.targets) {
      const t = run.targets[name as TargetName]
      if (t !== undefined && needsRevoke(t.state) && (t.nextAttemptAt === null || Date.parse(t.nextAttemptAt) <= now.getTime())) return true
    }
    return false
  }

  /** Is the run this node's to revoke now? A negative answer is checked again on a settled view of the owners. */
  async #owns (run: RunRecord): Promise<boolean> {
    if (this.#ownership.owns(run)) return true
    // Just armed here: a shared view of owners may not show this node's claim yet. A view that cannot be refreshed
    // (no quorum) is taken as it is: the revoke is then left to the next pass, not failed.
    await this.#ownership.settle?.().catch(() => {})
    return this.#ownership.owns(this.#deps.ledger.get(run.runId) ?? run)
  }

  /** Revoke every target of the run that still needs it. `force` ignores the retry due time. */
  revoke (runId: string, force = true): Promise<RunRecord> {
    const running = this.#inFlight.get(runId)
    if (running !== undefined) return running
    const p = this.#revoke(runId, force).finally(() => this.#inFlight.delete(runId))
    this.#inFlight.set(runId, p)
    return p
  }

  /** This node's runs with a revoke due now (terminal runs whose targets still hold something). */
  due (now: Date): RunRecord[] {
    return this.#deps.ledger.all().filter(r => this.isDue(r, now) && this.#ownership.owns(r))
  }

  /**
   * Record a change of the run even when the ledger cannot be written (see the top of this file). `why` names the
   * step for the log; a change kept in memory only is logged and counted.
   */
  async record (runId: string, why: string, change: (run: RunRecord) => RunRecord | null, opts: Pick<UpdateOptions, 'asOwner' | 'decided'> = {}): Promise<RunRecord> {
    const { run, durable } = await recordRun(this.#deps.ledger, runId, change, opts)
    if (!durable) {
      this.deferredCounts.ledger++
      this.#deps.observer?.deferred?.('ledger')
      this.#deps.logger.error({ runId, step: why }, 'the run ledger could not be written; the change is kept in memory and written when space returns')
    }
    return run
  }

  /**
   * Start removing a just-ended run's local target (hpc) while its end is still being written (UpdateOptions.decided):
   * the run dir goes one fsync sooner. Its revoke, queued as always once the end is recorded, waits for this removal
   * and records its outcome as its own attempt's (a failure is retried after its delay, as any). A crash
   * before the end is written finds the run live on restart: it ends again (its evidence is on disk) and the revoke
   * finds nothing left, which counts as done. Left to the regular revoke: a launched run (its command is stopped
   * first: beforeRevoke), a run not this node's, a target not `revoking`, a user with an early removal in flight.
   */
  startEarly (run: RunRecord): void {
    const target = this.#deps.targets.get(EARLY_TARGET)
    if (target === undefined || run.targets[EARLY_TARGET]?.state !== 'revoking' || run.mode === 'launch') return
    if (this.#early.has(run.runId) || this.#earlyUsers.has(run.user) || !this.#ownership.owns(run)) return
    this.#earlyUsers.add(run.user)
    const attempt = this.#attempt(target, run).finally(() => { this.#earlyUsers.delete(run.user) })
    this.#early.set(run.runId, attempt)
  }

  /** A target's revoke, timed, its failure returned rather than thrown (the crash tests' failpoints sit around it). */
  async #attempt (target: Target, run: RunRecord): Promise<Attempt> {
    const started = process.hrtime.bigint()
    let failure: unknown = null
    try {
      failpoint('revoke.before-target')
      await target.revoke(targetRun(run))
      failpoint('revoke.after-target')
    } catch (err) {
      failure = err ?? new Error('revoke failed')
    }
    return { failure, seconds: Number(process.hrtime.bigint() - started) / 1e9 }
  }

  /** Write what the revoke path kept in memory (ledger records, audit lines): the monitor calls this on each pass. */
  async retryRecords (): Promise<void> {
    const { ledger, audit, logger } = this.#deps
    const pending = ledger.unsynced()
    if (pending.length > 0) {
      await ledger.flush()
      logger.info({ runs: pending.length }, 'run ledger records kept in memory are written')
    }
    await audit.flushKept()
  }

  async #audit (entry: AuditEntry): Promise<void> {
    if (await this.#deps.audit.appendOrKeep(entry)) return
    this.deferredCounts.audit++
    this.#deps.observer?.deferred?.('audit')
    this.#deps.logger.error({ runId: entry.runId }, 'audit line not written; kept in memory and written when space returns')
  }

  async #revoke (runId: string, force: boolean): Promise<RunRecord> {
    const log = this.#deps.logger.child({ runId })
    const run = this.#deps.ledger.get(runId)
    if (run === undefined) throw nfsError('NFS_ERR_RUN_NOT_FOUND', [runId])
    if (!(await this.#owns(run))) {
      log.debug('not this node\'s run: its owner revokes it')
      return run
    }
    if (run.mode === 'launch' && this.#deps.beforeRevoke !== undefined) {
      await this.#deps.beforeRevoke(run).catch((err: unknown) => { log.error({ err }, 'stopping the command before its revoke failed; revoking anyway') })
    }
    try {
      const done = await this.#revokeOwned(this.#deps.ledger.get(runId) ?? run, force, log)
      // An early removal its revoke did not wait for (the target was settled meanwhile) is not kept for good.
      this.#early.delete(runId)
      if (!needsOwner(done)) await this.releaseDone(runId)
      return done
    } catch (err) {
      if (!(err instanceof NotOwner)) throw err
      log.warn('this node stopped owning the run during its revoke; its new owner finishes it')
      return this.#deps.ledger.get(runId) ?? run
    }
  }

  /**
   * Give up the owner key of a run that needs no owner any more (CLUSTER.md "Keys": own/ keys are for runs that need
   * one; a shared ledger must not keep one per run ever armed). Best effort: one that fails (etcd out of reach, the
   * revoke's record still kept in memory) is tried again by the monitor's pass. Nothing to do on one node.
   */
  async releaseDone (runId: string): Promise<void> {
    if (this.#ownership.release === undefined) return
    try {
      if (await this.#ownership.release(runId)) this.#deps.logger.debug({ runId }, 'released the owner key of a revoked run')
    } catch (err) {
      this.#deps.logger.warn({ runId, err }, 'releasing the owner key of a revoked run failed; the next pass tries again')
    }
  }

  /** An owner's write: refused (a conflict) once the run is no longer this node's, which ends the revoke here. */
  async #ownerRecord (runId: string, why: string, change: (run: RunRecord) => RunRecord | null): Promise<RunRecord> {
    try {
      return await this.record(runId, why, change, { asOwner: true })
    } catch (err) {
      const now = this.#deps.ledger.get(runId)
      if (isCoded(err, 'NFS_ERR_CONFLICT') && now !== undefined && !this.#ownership.owns(now)) throw new NotOwner()
      throw err
    }
  }

  async #revokeOwned (start: RunRecord, force: boolean, log: Logger): Promise<RunRecord> {
    const { targets, clock, retry, observer } = this.#deps
    const runId = start.runId
    let run = start
    for (const name of Object.keys(run.targets) as TargetName[]) {
      const t = run.targets[name]!
      if (!needsRevoke(t.state)) continue
      // Checked before each target: ownership can move (a fenced node) between two slow revokes.
      if (!this.#ownership.owns(run)) throw new NotOwner()
      if (!force && t.nextAttemptAt !== null && Date.parse(t.nextAttemptAt) > clock().getTime()) continue
      const target = targets.get(name)
      if (target === undefined) {
        // A target removed from the config still holds secrets: keep the record so an admin sees it.
        log.error({ target: name }, 'run has secrets in a target that is no longer configured')
        continue
      }
      // An end marks its targets `revoking` already, and a retry of revoke_failed keeps that state until it is
      // settled; only a target still `provisioned` (a run ended by an older daemon) gets its own write first.
      if (t.state === 'provisioned' || t.state === 'provisioning') {
        run = await this.#ownerRecord(runId, 'revoking', r => {
          r.targets[name]!.state = 'revoking'
          return r
        })
      }
      // An early removal of this target (startEarly) is this attempt: its outcome is recorded as this one's would be
      // (a failure waits for its retry time, as any: a removal stalled to its deadline is not run twice in a row).
      const early = name === EARLY_TARGET ? this.#early.get(runId) : undefined
      if (early !== undefined) this.#early.delete(runId)
      const { failure, seconds } = early !== undefined ? await early : await this.#attempt(target, run)
      observer?.revoked(name, failure === null, seconds)
      if (failure === null) {
        run = await this.#ownerRecord(runId, 'revoked', r => {
          const rec = r.targets[name]!
          rec.state = 'revoked'
          rec.revokedAt = clock().toISOString()
          rec.nextAttemptAt = null
          rec.lastError = null
          return r
        })
        log.info({ target: name, seconds }, 'revoked')
        await this.#audit({ action: 'run.revoke', actor: 'nf-secretsd', runId, target: name, workspace: run.workspace })
        continue
      }
      const code = isCoded(failure) ? failure.code : 'NFS_ERR_REVOKE_FAILED'
      run = await this.#ownerRecord(runId, 'revoke_failed', r => {
        const rec = r.targets[name]!
        rec.state = 'revoke_failed'
        rec.attempts += 1
        rec.lastError = { code, message: isCoded(failure) ? failure.message : 'revoke failed' }
        rec.nextAttemptAt = new Date(clock().getTime() + retryDelayMs(rec.attempts, retry.initialMs, retry.maxMs)).toISOString()
        return r
      })
      log.warn({ target: name, err: failure, attempts: run.targets[name]!.attempts, next: run.targets[name]!.nextAttemptAt }, 'revoke failed; will retry')
    }
    return run
  }
}
