// Liveness probes behind one small interface, so the monitor can be tested with fakes and runs for real with these.
import { isProcessAlive, processStartTime } from './liveness/process.js'
import { sessionLockHolder } from './liveness/session-lock.js'
import { slurmJobState, type SlurmJobState } from './liveness/slurm.js'
import { observeRun, historyMarkOf, type Observation, type RunFiles } from './observe.js'

export interface Probes {
  processAlive (pid: number, startTime: number | null): Promise<boolean>
  processStart (pid: number): Promise<number | null>
  sessionLock (launchDir: string, sessionId: string): Promise<{ held: boolean, pid: number | null }>
  slurmJob (jobId: string): Promise<SlurmJobState>
  observe (files: RunFiles): Promise<Observation>
  historyMark (launchDir: string, uid: number): Promise<number>
}

export function realProbes (): Probes {
  return {
    processAlive: isProcessAlive,
    processStart: processStartTime,
    sessionLock: sessionLockHolder,
    slurmJob: (jobId) => slurmJobState(jobId),
    observe: observeRun,
    historyMark: historyMarkOf
  }
}
