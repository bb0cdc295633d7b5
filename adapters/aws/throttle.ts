// Flow control shared by every run of one aws target. Secrets Manager's quota is per account and per second, so
// the pacing has to be one bucket for the whole daemon, not one per run: a burst of runs starting together must
// queue behind each other instead of each believing it has the full rate to itself.
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'

export interface TokenBucketOptions {
  /** how many calls may go out back to back after an idle spell; 1 paces every call evenly */
  burst?: number
  /**
   * Fraction added to the spacing between calls. The far end counts calls by when they arrive, and a call that
   * leaves a little late (event loop, signing, connect) can land in the same second as the next ones; 5% of
   * head room keeps the count per second at the far end at or below the configured rate.
   */
  slack?: number
  now?: () => number
}

/**
 * A token bucket in its virtual-scheduling form (GCRA): each caller reserves the next free slot synchronously,
 * so waiters are served in arrival order and a timer that fires late does not let the next slots bunch up.
 */
export class TokenBucket {
  readonly #intervalMs: number
  readonly #toleranceMs: number
  readonly #now: () => number
  /** theoretical arrival time of the next call */
  #tat = 0

  constructor (ratePerSecond: number, opts: TokenBucketOptions = {}) {
    if (!(ratePerSecond > 0)) throw new RangeError('ratePerSecond must be positive')
    const burst = Math.max(1, Math.floor(opts.burst ?? 1))
    this.#intervalMs = (1000 / ratePerSecond) * (1 + (opts.slack ?? 0.05))
    this.#toleranceMs = (burst - 1) * this.#intervalMs
    this.#now = opts.now ?? (() => performance.now())
  }

  /** Milliseconds the caller must wait for its slot; the slot is taken when this returns. */
  reserve (): number {
    const now = this.#now()
    const at = Math.max(now, this.#tat - this.#toleranceMs)
    this.#tat = Math.max(this.#tat, at) + this.#intervalMs
    return at - now
  }

  /** Resolves when the caller may make one call. */
  async take (): Promise<void> {
    const wait = this.reserve()
    if (wait > 0) await sleep(Math.ceil(wait))
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
