// Pure rules of the run lifecycle: which end a run gets, how long to wait before retrying a revoke, and when a
// run counts as dead. Kept apart from I/O so each rule has a table test.
import { nfsError } from '../errors.js'
import { isTerminal, type RunRecord, type RunState, type TargetState } from '../types.js'
import { DOLLAR_SAFE_VERSION, escapesDollar } from '../nextflow/log-markers.js'

/** The terminal state for a command that ended with this exit code or signal. */
export function stateForExit (exitCode: number | null | undefined, signal: string | null | undefined): 'completed' | 'failed' | 'killed' {
  if (signal !== null && signal !== undefined && signal !== '') return 'killed'
  if (exitCode === 0) return 'completed'
  // 128+N is how a shell reports a child killed by signal N.
  if (exitCode !== null && exitCode !== undefined && exitCode > 128 && exitCode <= 128 + 64) return 'killed'
  return 'failed'
}

/** Exponential backoff with full jitter: the nth retry waits a random time up to initial * 2^(n-1), capped. */
export function retryDelayMs (attempts: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.max(0, attempts - 1))
  return Math.max(initialMs / 2, Math.round(ceiling * random()))
}

export const ALLOWED: Record<RunState, RunState[]> = {
  armed: ['running', 'completed', 'failed', 'killed', 'expired'],
  running: ['completed', 'failed', 'killed'],
  completed: [],
  failed: [],
  killed: [],
  expired: []
}

export function canTransition (from: RunState, to: RunState): boolean {
  return ALLOWED[from].includes(to)
}

/** Targets that still hold something of the run (or may: `provisioning` is the write-ahead intent). */
export function needsRevoke (state: TargetState): boolean {
  return state !== 'revoked'
}

/**
 * Does the run still need a node to answer for its end (CLUSTER.md "Ownership")? While it is live, or a target still
 * holds something. Once not, its owner key is given up (released) and no node ever adopts it again.
 */
export function needsOwner (run: Pick<RunRecord, 'state' | 'targets'>): boolean {
  return !isTerminal(run.state) || Object.values(run.targets).some(t => t !== undefined && needsRevoke(t.state))
}

/**
 * A live run whose intent is in the ledger and some target still `provisioning`: its arm is placing it now, or the arm
 * ended without recording its placements (its caller was answered with an error, or the daemon stopped meanwhile).
 */
export function intentPending (run: Pick<RunRecord, 'state' | 'targets'>): boolean {
  return !isTerminal(run.state) && Object.values(run.targets).some(t => t?.state === 'provisioning')
}

export interface LivenessSignals {
  /** the history line of the run, if one was found */
  history: 'running' | 'OK' | 'ERR' | null
  /** each probe that applies to this run: true alive, false dead, null could not tell */
  probes: Array<boolean | null>
}

export type Verdict = { kind: 'alive' } | { kind: 'ended', state: 'completed' | 'failed' | 'killed', reason: string } | { kind: 'unknown' }

/**
 * What the signals say about a running run. A terminal history line wins; otherwise the run is dead only when at
 * least one probe applies and every one that applies says dead (a probe that cannot tell keeps it alive).
 */
export function verdict (signals: LivenessSignals, wrapperExit: { exitCode: number | null, signal: string | null } | null): Verdict {
  if (signals.history === 'OK') return { kind: 'ended', state: 'completed', reason: 'history OK' }
  if (signals.history === 'ERR') return { kind: 'ended', state: 'failed', reason: 'history ERR' }
  if (signals.probes.some(p => p === true || p === null)) return signals.probes.some(p => p === true) ? { kind: 'alive' } : { kind: 'unknown' }
  if (signals.probes.length === 0) return { kind: 'unknown' }
  if (wrapperExit !== null) return { kind: 'ended', state: stateForExit(wrapperExit.exitCode, wrapperExit.signal), reason: 'command exited' }
  return { kind: 'ended', state: 'killed', reason: 'process gone without a terminal line' }
}

/**
 * A run whose hpc store holds values with `$`, started by a Nextflow that does not escape it (log-markers.ts
 * escapesDollar): the warning to give, once. Pure.
 */
export function dollarWarning (run: Pick<RunRecord, 'dollarNames' | 'warnings'>, version: string | null): { code: string, reason: string, names: string[] } | null {
  if (version === null || run.dollarNames === undefined || run.dollarNames.length === 0) return null
  if (escapesDollar(version) !== false || (run.warnings ?? []).includes(DOLLAR_WARNING)) return null
  return {
    code: DOLLAR_WARNING,
    reason: `Nextflow ${version} is older than ${DOLLAR_SAFE_VERSION}: its tasks expand \`$\` in secret values, so ${run.dollarNames.join(', ')} will not arrive as stored (a missing variable fails the task); use Nextflow ${DOLLAR_SAFE_VERSION} or later`,
    names: [...run.dollarNames]
  }
}

export const DOLLAR_WARNING = 'nextflow-dollar'

export function isExpired (run: Pick<RunRecord, 'state' | 'expiresAt'>, now: Date): boolean {
  return run.state === 'armed' && run.expiresAt !== null && Date.parse(run.expiresAt) <= now.getTime()
}

/**
 * A live run tied to the Slurm job that hosts its head (`nf-secrets sbatch`): the job id recorded and the TTL
 * cleared, so only the job's end or Nextflow's ends it. Binding again to the same job is a no-op (null); an ended
 * run or one tied to another job is refused. Pure; applied inside the ledger's compare-and-swap.
 */
export function bindToJob (run: RunRecord, jobId: string): RunRecord | null {
  if (isTerminal(run.state)) throw nfsError('NFS_ERR_RUN_STATE', [run.runId, run.state])
  if (run.slurmJobId === jobId && run.expiresAt === null) return null
  if (run.slurmJobId !== null && run.slurmJobId !== jobId) throw nfsError('NFS_ERR_CONFLICT', [`run ${run.runId} is tied to another Slurm job`])
  return { ...run, slurmJobId: jobId, expiresAt: null }
}
