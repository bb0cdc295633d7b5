// Telling a run's user something about it (a `run.warning`), once per code: the daemon's log (warn), a `run.warning`
// event and the record's `warnings`, which `runs show` prints. Names of secrets only, never a value.
import type { EventBus } from '../events.js'
import type { Logger } from '../logger.js'
import type { RunLedger } from '../store/run-ledger.js'
import type { RunRecord } from '../types.js'
import { cannotWriteNow } from './deferred-records.js'
import { withRun } from './transition.js'

export interface Warning {
  /** stable, kept on the record: `nextflow-dollar` (run-rules.ts dollarWarning) */
  code: string
  reason: string
  names: string[]
}

/**
 * Warnings whose write failed as "cannot write now" (runId and code -> the warning). In a cluster such a write may
 * have been applied all the same (every answer of the client's tries lost, or committed once quorum returned), and
 * then the record says it was given while nobody was told: the next pass would never warn again. Kept here until the
 * record shows it (told then: tellRecorded) or a new write of it succeeds.
 */
export type UntoldWarnings = Map<string, Warning>

const keyOf = (runId: string, code: string): string => `${runId}\0${code}`

/**
 * Record and publish `w` for the run unless it was given already (true when it is new now). With `untold`, a write
 * that cannot be made now keeps `w` there before the error goes on.
 */
export async function warnRun (deps: { ledger: RunLedger, events: EventBus }, log: Logger, runId: string, w: Warning, untold?: UntoldWarnings): Promise<boolean> {
  let fresh = false
  let run: RunRecord
  try {
    // The change may run again after a version conflict: `fresh` is what the last, written, attempt saw.
    run = await withRun(deps.ledger, runId, r => {
      fresh = !(r.warnings ?? []).includes(w.code)
      if (!fresh) return null
      r.warnings = [...(r.warnings ?? []), w.code]
      return r
    })
  } catch (err) {
    if (untold !== undefined && cannotWriteNow(err)) untold.set(keyOf(runId, w.code), w)
    throw err
  }
  untold?.delete(keyOf(runId, w.code))
  if (!fresh) return false
  tell(deps, log, run, w)
  return true
}

/** Tell the kept warnings of `run` that its record now shows (written by a write that was answered as failed). */
export function tellRecorded (deps: { events: EventBus }, log: Logger, run: RunRecord, untold: UntoldWarnings): void {
  for (const code of run.warnings ?? []) {
    const w = untold.get(keyOf(run.runId, code))
    if (w === undefined) continue
    untold.delete(keyOf(run.runId, code))
    tell(deps, log, run, w)
  }
}

/** Forget the kept warnings of runs that `live` no longer holds (ended, pruned): nobody would be told any more. */
export function forgetUntold (untold: UntoldWarnings, live: (runId: string) => boolean): void {
  for (const key of untold.keys()) if (!live(key.slice(0, key.indexOf('\0')))) untold.delete(key)
}

function tell (deps: { events: EventBus }, log: Logger, run: RunRecord, w: Warning): void {
  log.warn({ runId: run.runId, user: run.user, code: w.code, names: w.names }, w.reason)
  deps.events.publish({ type: 'run.warning', user: run.user, workspace: run.workspace, runId: run.runId, names: w.names, state: w.code, reason: w.reason })
}
