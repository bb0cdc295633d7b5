// The run lifecycle's face to the three doors (api/, watch/, pty/): they turn their input into these few calls.
import type { TargetStatus } from '../../adapters/types.js'
import type { Caller, RunMode, RunRecord, RunState, TargetName } from '../types.js'

export interface CreateRunRequest {
  workspace?: string
  launchDir: string
  targets?: TargetName[]
  only?: string[]
  /**
   * least privilege (SPEC 11): the names the pipeline references, as the client's scan found them; the run gets only
   * those, and a name that resolves to nothing fails with NFS_ERR_SECRET_MISSING before anything is placed, unless
   * `allowMissing`. `only` wins over both; absent: every resolved secret (`--all`, and clients older than SPEC 11).
   */
  names?: string[]
  allowMissing?: boolean
  mode: RunMode
  ttlSeconds?: number
  slurmJobId?: string
  /** the wrapper's or the launched child's pid, for liveness */
  pid?: number
  command?: string[]
  env?: Record<string, string>
  cols?: number
  rows?: number
}

export interface CreatedRun {
  runId: string
  sessionId: string
  env: Record<string, string>
  secrets: string[]
  targets: TargetName[]
}

export interface EndRequest {
  exitCode?: number
  signal?: string
}

/** What the API shows of a run: the ledger record without anything a caller should not see. */
export type RunView = Omit<RunRecord, 'version'>

export interface RunService {
  create (caller: Caller, req: CreateRunRequest): Promise<CreatedRun>
  list (caller: Caller, all: boolean): RunView[]
  get (caller: Caller, runId: string): RunView
  /** the wrapper (or a launched child) reports its end; a `-bg` Nextflow may outlive it */
  finish (caller: Caller, runId: string, end: EndRequest): Promise<RunView>
  /** tie an armed run to the caller's Slurm job that hosts its head (`nf-secrets sbatch`); clears its TTL */
  bindSlurmJob (caller: Caller, runId: string, jobId: string): Promise<RunView>
  /** an explicit revoke: ends the run as killed if live, then removes its secrets */
  revoke (caller: Caller, runId: string): Promise<RunView>
  countsByState (): Partial<Record<RunState, number>>
  targetStatus (): Promise<Record<string, TargetStatus>>
}
