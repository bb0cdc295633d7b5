// Flow control shared by every run of one aws target. Secrets Manager's quota is per account and per second, so
// the pacing has to be one bucket for the whole daemon, not one per run: a burst of runs starting together must
// queue behind each other instead of each believing it has the full rate to itself.
import { performance } from 'node:perf_hooks'
import { realTimers, type TimerHandle, type Timers } from '../../daemon/os/timers.js'

export interface TokenBucketOptions {
  /** how many calls may go out back to back after an idle spell; 1 paces every call evenly */
  burst?: number
  /**
   * Fraction added to the spacing between calls. The far end counts calls by when they arrive, and a call that
   * leaves a little late (event loop, signing, connect) can land in the same second as the next ones; 5% of
   * head room keeps the count per second at the far end at or below the configured rate.
   */
  slack?: number
  /** the clock and timers (tests move them by hand); by default performance.now() and the process's timers */
  timers?: Timers
}

/**
 * A token bucket in its virtual-scheduling form (GCRA), served by one pump: waiters queue in arrival order and
 * each grant is timed from the clock at the moment it is made. A late timer (a busy event loop) therefore
 * delays the calls behind it instead of letting them out together in a burst.
 */
export class TokenBucket {
  readonly #intervalMs: number
  readonly #toleranceMs: number
  readonly #timers: Timers
  readonly #queue: Array<() => void> = []
  /** theoretical arrival time of the next call */
  #tat = -Infinity
  #timer: TimerHandle | undefined

  constructor (ratePerSecond: number, opts: TokenBucketOptions = {}) {
    if (!(ratePerSecond > 0)) throw new RangeError('ratePerSecond must be positive')
    const burst = Math.max(1, Math.floor(opts.burst ?? 1))
    this.#intervalMs = (1000 / ratePerSecond) * (1 + (opts.slack ?? 0.05))
    this.#toleranceMs = (burst - 1) * this.#intervalMs
    this.#timers = opts.timers ?? { ...realTimers, now: () => performance.now() }
  }

  /** Resolves when the caller may make one call. */
  async take (): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#queue.push(resolve)
      this.#pump()
    })
  }

  #pump (): void {
    if (this.#timer !== undefined) return
    while (this.#queue.length > 0) {
      const now = this.#timers.now()
      const tat = Math.max(this.#tat, now)
      const wait = tat - this.#toleranceMs - now
      if (wait > 0) {
        this.#timer = this.#timers.setTimeout(() => { this.#timer = undefined; this.#pump() }, Math.ceil(wait))
        return
      }
      this.#tat = tat + this.#intervalMs
      this.#queue.shift()!()
    }
  }
}

/** Bounds how many operations run at once; the rest wait in arrival order. */
export class Semaphore {
  #free: number
  readonly #waiters: Array<() => void> = []

  constructor (size: number) {
    if (!(size >= 1)) throw new RangeError('size must be at least 1')
    this.#free = Math.floor(size)
  }

  async run<T> (fn: () => Promise<T>): Promise<T> {
    if (this.#free > 0) {
      this.#free--
    } else {
      await new Promise<void>((resolve) => this.#waiters.push(resolve))
    }
    try {
      return await fn()
    } finally {
      // Hand the slot straight to the next waiter so that a newcomer cannot overtake it.
      const next = this.#waiters.shift()
      if (next !== undefined) next()
      else this.#free++
    }
  }
}
