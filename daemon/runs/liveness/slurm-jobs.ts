// What the monitor knows of Slurm: the latest answer about every job that hosts a live run, refreshed by one squeue
// call per pass for all of them. Reads never wait on Slurm: a slow or stuck controller (each call has a deadline)
// leaves the answers as they were, so no run that does not depend on Slurm is delayed by it, and runs that do keep
// their last known state, or 'unknown', which keeps them alive, until Slurm answers again.
import { nfsError } from '../../errors.js'
import { querySlurmJobs, type SlurmJob, type SlurmJobState, type SlurmQueryOptions } from './slurm.js'

export type SlurmQuery = (ids: readonly string[]) => Promise<Map<string, SlurmJob> | null>

interface Known extends SlurmJob { at: number }

export class SlurmJobs {
  readonly #query: SlurmQuery
  readonly #known = new Map<string, Known>()
  #inFlight: Promise<boolean> | null = null
  #answers = 0

  constructor (query: SlurmQuery) {
    this.#query = query
  }

  static real (opts: SlurmQueryOptions = {}): SlurmJobs {
    return new SlurmJobs(async (ids) => await querySlurmJobs(ids, opts))
  }

  /**
   * Ask Slurm once about all these jobs. While a call is still out, its answer stands and no second one is made (one
   * question at a time to the controller, however often passes come). Resolves whether Slurm answered.
   */
  refresh (ids: readonly string[]): Promise<boolean> {
    if (this.#inFlight !== null) return this.#inFlight
    const asked = new Set(ids)
    const started = this.#answers
    this.#inFlight = (async () => {
      if (asked.size === 0) return true
      const answer = await this.#query([...asked])
      if (answer === null) return false
      const at = ++this.#answers
      for (const [id, job] of answer) this.#known.set(id, { ...job, at })
      // Forget jobs no live run names any more, unless an owner check learnt them while this call was out.
      for (const [id, k] of this.#known) if (!asked.has(id) && k.at <= started) this.#known.delete(id)
      return true
    })().finally(() => { this.#inFlight = null })
    return this.#inFlight
  }

  /** The latest answer about a job; 'unknown' when Slurm has not answered about it. Never waits. */
  state (jobId: string): SlurmJobState {
    return this.#known.get(jobId)?.state ?? 'unknown'
  }

  /**
   * Who Slurm says owns the job (a fresh call, for a caller naming a job): a uid, or null when Slurm does not
   * know the job. NFS_ERR_TARGET_UNAVAILABLE when Slurm cannot be asked: the job cannot be checked, so it is refused.
   */
  async owner (jobId: string): Promise<number | null> {
    const answer = await this.#query([jobId])
    if (answer === null) throw nfsError('NFS_ERR_TARGET_UNAVAILABLE', ['slurm', 'squeue did not answer, so the job\'s owner cannot be checked; try again'])
    const job = answer.get(jobId) ?? { state: 'gone', uid: null }
    this.#known.set(jobId, { ...job, at: ++this.#answers })
    return job.uid
  }
}
