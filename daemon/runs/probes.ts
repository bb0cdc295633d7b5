// Liveness probes behind one small interface, so the monitor can be tested with fakes and runs for real with these.
import { isProcessAlive, processStartTime } from './liveness/process.js'
import { sessionLockHolder } from './liveness/session-lock.js'
import type { SlurmJobState } from './liveness/slurm.js'
import { SlurmJobs } from './liveness/slurm-jobs.js'
import { observeRun, historyMarkOf, type Observation, type RunFiles } from './observe.js'
import { createCheckpoints, type Checkpoints } from '../nextflow/history-checkpoints.js'

export interface Probes {
  processAlive (pid: number, startTime: number | null): Promise<boolean>
  processStart (pid: number): Promise<number | null>
  /** `uid`: the run's user; only a LOCK of theirs held by a process of theirs counts */
  sessionLock (launchDir: string, sessionId: string, uid?: number): Promise<{ held: boolean, pid: number | null }>
  /** Slurm's latest answer about a job (see slurmRefresh); never waits on Slurm */
  slurmJob (jobId: string): SlurmJobState
  /** ask Slurm once about all these jobs; resolves whether it answered */
  slurmRefresh (jobIds: readonly string[]): Promise<boolean>
  /** the job's user as Slurm records it, null when Slurm does not know the job */
  slurmOwner (jobId: string): Promise<number | null>
  observe (files: RunFiles): Promise<Observation>
  historyMark (launchDir: string, uid: number): Promise<number>
}

/** `histories`: where long histories are read from (history-checkpoints.ts), shared with the auto-runs (daemon.ts). */
export function realProbes (histories: Checkpoints = createCheckpoints()): Probes {
  const slurm = SlurmJobs.real()
  return {
    processAlive: isProcessAlive,
    processStart: processStartTime,
    sessionLock: sessionLockHolder,
    slurmJob: (jobId) => slurm.state(jobId),
    slurmRefresh: async (jobIds) => await slurm.refresh(jobIds),
    slurmOwner: async (jobId) => await slurm.owner(jobId),
    observe: async (files) => await observeRun(files, histories),
    historyMark: async (launchDir, uid) => await historyMarkOf(launchDir, uid, histories)
  }
}
