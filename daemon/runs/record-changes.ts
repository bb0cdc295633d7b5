// The lifecycle's changes to one run record, each applied inside the ledger's compare-and-swap (transition.ts
// withRun, Revoker.record): it changes the record it is given and returns it, or null for no change. Pure but for
// `clock`, read only when the change applies.
import { isTerminal, type RunRecord, type TargetName } from '../types.js'
import { canTransition } from './run-rules.js'
import type { EndRequest, EndState } from './service.js'

/** A live run seen starting: armed -> running, and the runName and pid it was seen with where none is recorded. */
export function startRecord (r: RunRecord, info: { runName?: string | null, pid?: number | null }, pidStart: number | null, clock: () => Date): RunRecord | null {
  if (isTerminal(r.state)) return null
  const changed = r.state === 'armed' || (info.runName != null && r.runName === null) || (info.pid != null && r.pid === null)
  if (!changed) return null
  if (r.state === 'armed') { r.state = 'running'; r.startedAt = clock().toISOString(); r.expiresAt = null }
  if (info.runName != null && r.runName === null) r.runName = info.runName
  if (info.pid != null && r.pid === null) { r.pid = info.pid; r.pidStart = pidStart }
  return r
}

export interface RunEnd {
  state: EndState
  reason: string
  exit: EndRequest
  /** the end is dropped when this no longer holds of the record */
  onlyIf?: ((run: RunRecord) => boolean) | undefined
}

/**
 * The end and the start of the revoke in one write: the targets configured here that hold something (or may) are
 * marked `revoking`. First end wins: a terminal run, or an end its state cannot go to, is left alone.
 */
export function endRecord (r: RunRecord, end: RunEnd, hasTarget: (name: TargetName) => boolean, clock: () => Date): RunRecord | null {
  if (isTerminal(r.state) || !canTransition(r.state, end.state) || end.onlyIf?.(r) === false) return null
  r.state = end.state
  r.endedAt = clock().toISOString()
  r.endReason = end.reason
  if (end.exit.exitCode !== undefined) r.exitCode = end.exit.exitCode
  if (end.exit.signal !== undefined) r.signal = end.exit.signal
  for (const [name, t] of Object.entries(r.targets)) {
    if (t !== undefined && (t.state === 'provisioned' || t.state === 'provisioning') && hasTarget(name as TargetName)) t.state = 'revoking'
  }
  return r
}

/** A wrapper gone while its `-bg` Nextflow session lives on: its exit is kept, its pid no longer identifies the run. */
export function wrapperGoneRecord (r: RunRecord, end: EndRequest): RunRecord | null {
  if (isTerminal(r.state)) return null
  r.exitCode = end.exitCode ?? null
  r.signal = end.signal ?? null
  r.pid = null
  r.pidStart = null
  return r
}
