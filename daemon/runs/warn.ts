// Telling a run's user something about it (a `run.warning`), once per code: the daemon's log (warn), a `run.warning`
// event and the record's `warnings`, which `runs show` prints. Names of secrets only, never a value.
import type { EventBus } from '../events.js'
import type { Logger } from '../logger.js'
import type { RunLedger } from '../store/run-ledger.js'
import { withRun } from './transition.js'

export interface Warning {
  /** stable, kept on the record: `nextflow-dollar` (run-rules.ts dollarWarning) */
  code: string
  reason: string
  names: string[]
}

/** Record and publish `w` for the run unless it was given already (true when it is new now). */
export async function warnRun (deps: { ledger: RunLedger, events: EventBus }, log: Logger, runId: string, w: Warning): Promise<boolean> {
  let fresh = false
  // The change may run again after a version conflict: `fresh` is what the last, written, attempt saw.
  const run = await withRun(deps.ledger, runId, r => {
    fresh = !(r.warnings ?? []).includes(w.code)
    if (!fresh) return null
    r.warnings = [...(r.warnings ?? []), w.code]
    return r
  })
  if (!fresh) return false
  log.warn({ runId, user: run.user, code: w.code, names: w.names }, w.reason)
  deps.events.publish({ type: 'run.warning', user: run.user, workspace: run.workspace, runId, names: w.names, state: w.code, reason: w.reason })
  return true
}
