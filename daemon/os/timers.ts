// Time as a dependency: the parts that wait (read scheduling, rate limits) take a Timers instead of calling
// setTimeout and Date.now themselves, so a test can move time on by hand (test/helpers/manual-timers.ts) and
// prove that something does not happen without sleeping for it.

/** What a set timer gives back: Node's Timeout has this shape. */
export interface TimerHandle { unref: () => unknown }

export interface Timers {
  /** milliseconds on this clock (only differences count) */
  now: () => number
  setTimeout: (fn: () => void, ms: number) => TimerHandle
  clearTimeout: (timer: TimerHandle | undefined) => void
}

/** The process's own clock and timers. */
export const realTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => { clearTimeout(timer as NodeJS.Timeout | undefined) }
}
