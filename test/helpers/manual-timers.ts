// Timers (daemon/os/timers.ts) that move only when a test says so: advance(ms) fires every timer due within ms, in
// order of due time, each at its own instant, letting the promise chains it starts run before the next one fires.
// With it a test proves an absence ("no second read") by moving the clock past every deadline, with no sleep.
import type { TimerHandle, Timers } from '../../daemon/os/timers.js'

interface Entry extends TimerHandle { at: number, seq: number, fn: () => void, cancelled: boolean }

/** Let promise chains and I/O callbacks queued so far run (setImmediate comes after every microtask). */
export const settle = async (): Promise<void> => { await new Promise(resolve => setImmediate(resolve)) }

export class ManualTimers implements Timers {
  #now: number
  #seq = 0
  readonly #queue: Entry[] = []

  constructor (start = 1_000_000) {
    this.#now = start
  }

  now = (): number => this.#now

  setTimeout = (fn: () => void, ms: number): TimerHandle => {
    const entry: Entry = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn, cancelled: false, unref: () => entry }
    this.#queue.push(entry)
    return entry
  }

  clearTimeout = (timer: TimerHandle | undefined): void => {
    if (timer !== undefined) (timer as Entry).cancelled = true
  }

  /** Timers set and neither fired nor cleared. */
  get pending (): number {
    return this.#queue.filter(e => !e.cancelled).length
  }

  /** Move the clock `ms` on and fire nothing: an event loop busy past its timers. advance(0) then fires the late ones. */
  skip (ms: number): void {
    this.#now += ms
  }

  /** Move the clock `ms` on, firing what falls due on the way (those the fired ones set included). */
  async advance (ms: number): Promise<void> {
    const until = this.#now + ms
    await settle()
    for (;;) {
      const live = this.#queue.filter(e => !e.cancelled && e.at <= until).sort((a, b) => a.at - b.at || a.seq - b.seq)
      const next = live[0]
      if (next === undefined) break
      next.cancelled = true
      this.#now = Math.max(this.#now, next.at)
      next.fn()
      await settle()
    }
    this.#now = until
    for (let i = this.#queue.length - 1; i >= 0; i--) if (this.#queue[i]!.cancelled) this.#queue.splice(i, 1)
  }
}
