// The signals that a run's Nextflow session is alive, apart from its wrapper: the session lock, the Nextflow pid
// (from the log on this host, or a `-bg` pid file), the Slurm job, and what the history and log say. Read by the
// monitor's pass and by the lifecycle when a wrapper ends (a `-bg` run outlives it); here, below both, so that
// neither imports the other.
import type { RunRecord } from '../../types.js'
import { logPidOnHost } from '../observe.js'
import type { Probes } from '../probes.js'
import type { SlurmJobState } from './slurm.js'

/** Which host-only signals to read (reach.ts): both on the head's own host, neither for a head elsewhere. */
export interface HostSignals { pid: boolean, lock: boolean }
const ALL: HostSignals = { pid: true, lock: true }

/**
 * Is the run's Nextflow session alive, apart from the wrapper? The session lock held, the Nextflow pid of our
 * session alive (from the log on this host, or a `-bg` pid file written since the run began), or its Slurm job.
 */
export async function sessionAlive (probes: Probes, run: RunRecord, host: string, read: HostSignals = ALL): Promise<boolean> {
  const signals = await sessionSignals(probes, run, host, read)
  return signals.probes.some(p => p === true) && signals.history !== 'OK' && signals.history !== 'ERR'
}

export async function sessionSignals (probes: Probes, run: RunRecord, host: string, read: HostSignals = ALL): Promise<{ history: 'running' | 'OK' | 'ERR' | null, probes: Array<boolean | null>, slurm: SlurmJobState | null, runName: string | null, pid: number | null, goodbye: { aborted: boolean } | null, version: string | null }> {
  const obs = await probes.observe({ launchDir: run.launchDir, uid: run.uid, sessionId: run.sessionId, historyMark: run.historyMark, runName: run.runName })
  const out: Array<boolean | null> = []
  const sessionId = obs.history?.sessionId ?? run.sessionId
  if (read.lock) out.push((await probes.sessionLock(run.launchDir, sessionId, run.uid)).held)
  let pid = read.pid ? logPidOnHost(obs.log, host, run.slurmJobId !== null) : null
  if (pid !== null) out.push(await probes.processAlive(pid, null))
  if (read.pid && obs.pidFile !== null && obs.pidFile.mtimeMs >= Date.parse(run.createdAt) - 2000) {
    out.push(await probes.processAlive(obs.pidFile.pid, null))
    pid ??= obs.pidFile.pid
  }
  // Slurm's latest answer (the pass asks it once for all jobs; see #askSlurm): reading it never waits on Slurm.
  const slurm = run.slurmJobId !== null ? probes.slurmJob(run.slurmJobId) : null
  if (slurm !== null) out.push(slurm === 'unknown' ? null : slurm !== 'gone')
  const goodbye = obs.log?.goodbye === true ? { aborted: obs.log.aborted } : null
  return { history: obs.history?.status ?? null, probes: out, slurm, runName: obs.history?.runName ?? obs.log?.runName ?? null, pid, goodbye, version: obs.log?.version ?? null }
}
