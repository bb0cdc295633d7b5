// The run lifecycle's face to the three doors (api/, watch/, pty/): they turn their input into these few calls.
// RunService is what the API needs; the watcher and the PTY host also report starts and ends they see
// (RunLifecycle) and read a few facts about runs (RunQueries). Nothing else of the lifecycle is theirs: the ledger,
// the store, the targets and the clock stay behind this face (STYLE: one narrow face per layer).
import type { TargetStatus } from '../../adapters/types.js'
import type { Caller, RunMode, RunRecord, RunState, TargetName } from '../types.js'
// What the API answers is the API's contract, shared with the CLI.
import type { CreatedRun, RunView } from '../contract/runs.js'
export type { CreatedRun, RunView }

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
  /**
   * `nf-secrets rerun TASK_DIR`: the `.nf-<hash>.secrets` path the task's `.command.run` sources; the run gets exactly
   * `names` there (hpc only), and `launchDir` is the task dir, which must be the caller's own (rerun.ts)
   */
  secretsFile?: string
  mode: RunMode
  /**
   * mode `auto` only: the runName of the history line Nextflow already wrote (auto-run.ts). The run is born with it:
   * a live run whose line cannot be found (its own session id is not Nextflow's, its mark is past the line) reads as
   * dead to the monitor, which ended auto-runs as killed while they were being provisioned.
   */
  runName?: string
  /**
   * mode `auto` only: the session UUID of the history line; with the launch dir and runName it gives the run its id
   * (ids.ts autoRunId), so that two nodes seeing one start make one run
   */
  autoSessionId?: string
  ttlSeconds?: number
  slurmJobId?: string
  /** the wrapper's or the launched child's pid, for liveness */
  pid?: number
  command?: string[]
  env?: Record<string, string>
  cols?: number
  rows?: number
}

export interface EndRequest {
  exitCode?: number
  signal?: string
}

export interface RunService {
  create (caller: Caller, req: CreateRunRequest): Promise<CreatedRun>
  /** `all`: ended runs too, the archived ones read from the ledger's archive */
  list (caller: Caller, all: boolean): Promise<RunView[]>
  get (caller: Caller, runId: string): Promise<RunView>
  /** the wrapper (or a launched child) reports its end; a `-bg` Nextflow may outlive it */
  finish (caller: Caller, runId: string, end: EndRequest): Promise<RunView>
  /** tie an armed run to the caller's Slurm job that hosts its head (`nf-secrets sbatch`); clears its TTL */
  bindSlurmJob (caller: Caller, runId: string, jobId: string): Promise<RunView>
  /** an explicit revoke: ends the run as killed if live, then removes its secrets */
  revoke (caller: Caller, runId: string): Promise<RunView>
  countsByState (): Promise<Partial<Record<RunState, number>>>
  targetStatus (): Promise<Record<string, TargetStatus>>
}

/** Reads the doors need, answered from the ledger's current view (all nodes' runs in cluster mode). */
export interface RunQueries {
  /** one run as the ledger has it now */
  run (runId: string): RunRecord | undefined
  /** wait until run() reflects every run acknowledged so far, on any node (a shared ledger's view may lag) */
  settle (): Promise<void>
  /** the live (not terminal) runs, those of one launch dir when given */
  live (launchDir?: string): RunRecord[]
  /** live runs whose head runs on this host and that this node owns: the ones whose local signals are its to read */
  localHeads (): RunRecord[]
  /**
   * live runs whose head runs on this host, whoever owns them (cluster mode: a run another node adopted while this
   * daemon was down): a launched command among them is still this host's to stop, and its end this host's to see
   */
  hostedHere (): RunRecord[]
  /** call back when a run turns terminal in the ledger, whichever node ended it (cluster mode: its change feed) */
  onEnded (listener: (run: RunRecord) => void): () => void
  /** is this target configured on this node */
  hasTarget (name: string): boolean
}

/** The monitor as the watcher sees it: a file event in a launch dir asks for a check of its live runs now. */
export interface RunChecks {
  /** check one live run now, serialised with the monitor's pass (a run another node owns is left alone) */
  checkRun (runId: string): Promise<void>
}

/** Something that hosts a run's process and must stop it before its secrets go (launched runs). */
export interface RunHost {
  stop (runId: string): Promise<void>
  /** The host still holds the run's command, alive or just gone: it ends the run itself, with the command's status. */
  holds (runId: string): boolean
}

/** The end of a run as a door reports it: the state it ends in (never back to armed or running). */
export type EndState = Exclude<RunState, 'armed' | 'running'>

/** What the watcher and the PTY host call besides the API's calls: a start they saw, an end they saw. */
export interface RunLifecycle extends RunService, RunQueries {
  /** a live run seen starting (history line, log, PTY child): armed -> running, recording its name and pid */
  markStarted (runId: string, info: { runName?: string | null, pid?: number | null }): Promise<RunRecord | null>
  /** end a live run (first end wins) and revoke it; `onlyIf` is checked inside the ledger's write */
  end (runId: string, state: EndState, reason: string, exit?: EndRequest, onlyIf?: (run: RunRecord) => boolean): Promise<RunRecord>
  /** is a launched run's end its host's to record (the PTY host holds its command) */
  hostHolds (runId: string): boolean
  /**
   * a launched run ended before its command went (a revoke, its owner's end): record that the command is gone now, and
   * how (the owner's revoke waits for it when another node owns the run)
   */
  commandGone (runId: string, exit: { exitCode: number | null, signal: string | null }): Promise<void>
}
