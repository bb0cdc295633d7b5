// The monitor's questions to Slurm: the jobs of all live runs in one call, off the pass. The pass reads the latest
// answers and never waits on Slurm, so a slow or stuck controller (its call is killed at a deadline) delays no other
// run. While a call is out no second one is made. When the answer comes, the runs whose job it reports gone are
// checked at once, so a job's end is acted on within a pass of it.
import type { Logger } from '../logger.js'
import type { RunRecord } from '../types.js'
import type { Probes } from './probes.js'

export class SlurmAsks {
  readonly #probes: Pick<Probes, 'slurmRefresh' | 'slurmJob'>
  readonly #log: Logger
  readonly #check: (runId: string) => Promise<void>
  // The one question to Slurm that is out, if any.
  #out: Promise<void> | null = null
  // Whether Slurm answered the last question: its outages are logged when they begin and end, not on every pass.
  #answered = true

  constructor (probes: Pick<Probes, 'slurmRefresh' | 'slurmJob'>, log: Logger, check: (runId: string) => Promise<void>) {
    this.#probes = probes
    this.#log = log
    this.#check = check
  }

  /** Ask about the jobs of these live runs (each with a slurmJobId), unless a question is out already. */
  ask (bound: readonly RunRecord[]): void {
    if (this.#out !== null) return
    if (bound.length === 0) return
    this.#out = (async () => {
      const answered = await this.#probes.slurmRefresh(bound.map(r => r.slurmJobId!))
      if (answered !== this.#answered) {
        this.#answered = answered
        if (answered) this.#log.info({ runs: bound.length }, 'Slurm answers again')
        else this.#log.warn({ runs: bound.length }, 'Slurm did not answer (squeue failed or passed its deadline); runs tied to jobs keep their last known state')
      }
      if (!answered) return
      for (const r of bound) {
        if (this.#probes.slurmJob(r.slurmJobId!) === 'gone') await this.#check(r.runId)
      }
    })().catch((err: unknown) => { this.#log.error({ err }, 'asking Slurm failed') }).finally(() => { this.#out = null })
  }

  /** The question out, if any, to its end. */
  async idle (): Promise<void> {
    await this.#out
  }
}
