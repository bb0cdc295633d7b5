// When a node adopts orphaned runs (CLUSTER.md "Takeover"): a sweep when it starts (runs orphaned before it joined),
// at every delete of an own/ key (a node's lease expired), and every ADOPT_SWEEP_MS (a sweep that failed on etcd).
// One sweep at a time: a dead node's keys all go in one revision, one delete per run, and each delete seen during a
// sweep asks for one more sweep after it, not one each. The daemon's backend and the bench share this, so that the
// bench's takeover figure times what the daemon does.
import type { Logger } from '../logger.js'

export const ADOPT_SWEEP_MS = 30_000

/** The part of EtcdOwnership the sweeps use. */
export interface Adopting {
  adoptOrphans: () => Promise<string[]>
  onOrphaned: (listener: (runId: string) => void) => () => void
}

export interface AdoptSweeps {
  /** resolves once no sweep runs and none is asked for (tests, the bench) */
  idle: () => Promise<void>
  close: () => void
}

/** The timer the sweeps use: setInterval, or a test's own. */
export type Every = (fn: () => void, ms: number) => () => void

const every: Every = (fn, ms) => {
  const timer = setInterval(fn, ms)
  timer.unref()
  return () => { clearInterval(timer) }
}

export function startAdoptSweeps (ownership: Adopting, onAdopted: (runIds: string[]) => void, log: Logger, everyMs = ADOPT_SWEEP_MS, timer: Every = every): AdoptSweeps {
  let running: Promise<void> | null = null
  let again = false
  let closed = false
  const sweep = (): void => {
    if (closed) return
    if (running !== null) { again = true; return }
    running = ownership.adoptOrphans().then(ids => {
      if (ids.length === 0) return
      log.warn({ runs: ids.length }, 'adopted runs of a node that left')
      // The runs are ours now whatever the listener does: its failure is logged here, not left to reject the sweep
      // (an unhandled rejection, and idle() would throw).
      try { onAdopted(ids) } catch (err) { log.error({ err, runs: ids.length }, 'checking adopted runs failed') }
    }, (err: unknown) => { log.warn({ err }, 'adopting orphaned runs failed; the next sweep tries again') })
      .finally(() => { running = null; if (again) { again = false; sweep() } })
  }
  const off = ownership.onOrphaned(() => { sweep() })
  const stopTimer = timer(sweep, everyMs)
  sweep()
  return {
    idle: async () => { for (let r = running; r !== null; r = running) await r },
    close: () => { closed = true; off(); stopTimer() }
  }
}
