// Removing a run's secrets from every target it touched: at least once, durably. Each target's state goes
// provisioned -> revoking -> revoked in the ledger; a failure becomes revoke_failed with a due time, retried with
// backoff until it succeeds, across restarts.
import type { Target, TargetRun } from '../../adapters/types.js'
import { isCoded } from '../errors.js'
import type { EventBus } from '../events.js'
import type { Logger } from '../logger.js'
import type { RunLedger } from '../store/run-ledger.js'
import type { AuditLog } from '../store/audit-log.js'
import type { RunRecord, TargetName } from '../types.js'
import { needsRevoke, retryDelayMs } from './policy.js'
import { withRun } from './transition.js'
import { failpoint } from '../failpoints.js'

export interface RevokeObserver {
  revoked (target: TargetName, ok: boolean, seconds: number): void
}

export interface RevokerDeps {
  ledger: RunLedger
  targets: ReadonlyMap<TargetName, Target>
  events: EventBus
  audit: AuditLog
  logger: Logger
  clock: () => Date
  retry: { initialMs: number, maxMs: number }
  observer?: RevokeObserver
}

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
    names: run.names
  }
}

export class Revoker {
  readonly #deps: RevokerDeps
  // One revoke per run at a time in this process; a second caller waits for the first.
  readonly #inFlight = new Map<string, Promise<RunRecord>>()

  constructor (deps: RevokerDeps) {
    this.#deps = deps
  }

  /** Revoke every target of the run that still needs it. `force` ignores the retry due time. */
  revoke (runId: string, force = true): Promise<RunRecord> {
    const running = this.#inFlight.get(runId)
    if (running !== undefined) return running
    const p = this.#revoke(runId, force).finally(() => this.#inFlight.delete(runId))
    this.#inFlight.set(runId, p)
    return p
  }

  /** Runs with a revoke due now (terminal runs whose targets still hold something). */
  due (now: Date): RunRecord[] {
    return this.#deps.ledger.all().filter(r =>
      r.endedAt !== null && Object.values(r.targets).some(t =>
        t !== undefined && needsRevoke(t.state) && (t.nextAttemptAt === null || Date.parse(t.nextAttemptAt) <= now.getTime())))
  }

  async #revoke (runId: string, force: boolean): Promise<RunRecord> {
    const { ledger, targets, logger, clock, retry, events, audit, observer } = this.#deps
    const log = logger.child({ runId })
    let run = ledger.get(runId)!
    for (const name of Object.keys(run.targets) as TargetName[]) {
      const t = run.targets[name]!
      if (!needsRevoke(t.state)) continue
      if (!force && t.nextAttemptAt !== null && Date.parse(t.nextAttemptAt) > clock().getTime()) continue
      const target = targets.get(name)
      if (target === undefined) {
        // A target removed from the config still holds secrets: keep the record so an admin sees it.
        log.error({ target: name }, 'run has secrets in a target that is no longer configured')
        continue
      }
      run = await withRun(ledger, runId, r => {
        r.targets[name]!.state = 'revoking'
        return r
      })
      const started = process.hrtime.bigint()
      try {
        failpoint('revoke.before-target')
        await target.revoke(targetRun(run))
        failpoint('revoke.after-target')
        const seconds = Number(process.hrtime.bigint() - started) / 1e9
        observer?.revoked(name, true, seconds)
        run = await withRun(ledger, runId, r => {
          const rec = r.targets[name]!
          rec.state = 'revoked'
          rec.revokedAt = clock().toISOString()
          rec.nextAttemptAt = null
          rec.lastError = null
          return r
        })
        log.info({ target: name, seconds }, 'revoked')
        await audit.append({ action: 'run.revoke', actor: 'nf-secretsd', runId, target: name, workspace: run.workspace })
      } catch (err) {
        observer?.revoked(name, false, Number(process.hrtime.bigint() - started) / 1e9)
        const code = isCoded(err) ? err.code : 'NFS_ERR_REVOKE_FAILED'
        run = await withRun(ledger, runId, r => {
          const rec = r.targets[name]!
          rec.state = 'revoke_failed'
          rec.attempts += 1
          rec.lastError = { code, message: isCoded(err) ? err.message : 'revoke failed' }
          rec.nextAttemptAt = new Date(clock().getTime() + retryDelayMs(rec.attempts, retry.initialMs, retry.maxMs)).toISOString()
          return r
        })
        log.warn({ target: name, err, attempts: run.targets[name]!.attempts, next: run.targets[name]!.nextAttemptAt }, 'revoke failed; will retry')
        events.publish({ type: 'run.revoke_failed', user: run.user, workspace: run.workspace, runId, target: name, state: 'revoke_failed' })
      }
    }
    const all = Object.values(run.targets).every(t => t === undefined || t.state === 'revoked')
    if (all) events.publish({ type: 'run.revoked', user: run.user, workspace: run.workspace, runId, names: run.names, state: run.state })
    return run
  }
}
