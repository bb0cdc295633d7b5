// When the watcher reads a launch dir. A dir not read within the last debounce window is read at once (leading edge);
// events during or right after a read coalesce into one more read when the window ends (trailing edge), so a burst of
// writes costs two reads at most. Reads of one dir run one after the other (two racing could record an older state
// last), a torn read asks for another (history is rewritten in place), and a dir with a live run is read again every
// interval, so that an event lost under load (or never raised, as on a network filesystem) cannot hide its end.
// One scheduler per watch group; stop() cancels every timer it set.
import { realTimers, type TimerHandle, type Timers } from '../os/timers.js'

export interface ReadWhat { history: boolean, log: boolean }

export interface ReadOutcome {
  /** the read caught a file half-written: read again shortly */
  retry: boolean
  /** a run of the dir is still live: read again after the interval even without an event */
  live: boolean
}

export interface ReadSchedulerOptions {
  debounceMs: number
  intervalMs: () => number
  /** read the dir; null when it is no longer watched */
  read: (dir: string, what: ReadWhat) => Promise<ReadOutcome | null>
  onError: (dir: string, err: unknown) => void
  /** the clock and timers (tests move them by hand); the process's own when left out */
  timers?: Timers
}

interface Pending extends ReadWhat { timer: TimerHandle, tries: number }

/** Torn reads retried at most this many times in a row. */
const MAX_RETRIES = 5
/**
 * Reads of different dirs in flight at once (the rest wait their turn, in order). Each holds the dir's fd and a file's,
 * and 1,000 runs moved into a root at once were 1,000 reads started together: their opens queued in the thread pool
 * ahead of the discovery of the dirs still to come, and held up to 2,000 fds.
 */
const MAX_READS = 32

export class ReadScheduler {
  readonly #o: ReadSchedulerOptions
  readonly #t: Timers
  readonly #pending = new Map<string, Pending>()
  readonly #reads = new Map<string, Promise<void>>()
  readonly #lastRead = new Map<string, number>()
  readonly #recheck = new Map<string, TimerHandle>()
  #stopped = false
  #active = 0
  readonly #waiting: Array<() => void> = []

  constructor (o: ReadSchedulerOptions) {
    this.#o = o
    this.#t = o.timers ?? realTimers
  }

  schedule (dir: string, what: ReadWhat, tries = 0): void {
    if (this.#stopped) return
    const p = this.#pending.get(dir)
    if (p !== undefined) {
      p.history ||= what.history
      p.log ||= what.log
      p.tries = Math.max(p.tries, tries)
      return
    }
    const since = this.#t.now() - (this.#lastRead.get(dir) ?? 0)
    const entry: Pending = {
      history: what.history,
      log: what.log,
      tries,
      timer: this.#t.setTimeout(() => { this.#queue(dir, entry) }, Math.max(0, this.#o.debounceMs - since))
    }
    this.#pending.set(dir, entry)
  }

  /**
   * Resolves once no read is running or queued behind one; timers not yet due are not waited for. With timers a test
   * moves by hand, advancing past every deadline and then this proves that no further read comes (no sleep).
   */
  async idle (): Promise<void> {
    while (this.#reads.size > 0) await Promise.all([...this.#reads.values()])
  }

  /** The dir is no longer watched: drop what is waiting for it. */
  forget (dir: string): void {
    const p = this.#pending.get(dir)
    if (p !== undefined) this.#t.clearTimeout(p.timer)
    this.#pending.delete(dir)
    const r = this.#recheck.get(dir)
    if (r !== undefined) this.#t.clearTimeout(r)
    this.#recheck.delete(dir)
    this.#lastRead.delete(dir)
  }

  stop (): void {
    this.#stopped = true
    for (const p of this.#pending.values()) this.#t.clearTimeout(p.timer)
    for (const r of this.#recheck.values()) this.#t.clearTimeout(r)
    this.#pending.clear()
    this.#recheck.clear()
  }

  #queue (dir: string, p: Pending): void {
    this.#pending.delete(dir)
    const next = (this.#reads.get(dir) ?? Promise.resolve()).then(async () => { await this.#read(dir, p) }).catch((err: unknown) => {
      this.#o.onError(dir, err)
    })
    this.#reads.set(dir, next)
    void next.finally(() => { if (this.#reads.get(dir) === next) this.#reads.delete(dir) })
  }

  /** A turn among MAX_READS; a released turn passes straight to the next waiter. */
  async #turn (): Promise<void> {
    if (this.#active < MAX_READS) {
      this.#active++
      return
    }
    await new Promise<void>(resolve => { this.#waiting.push(resolve) })
  }

  #release (): void {
    const next = this.#waiting.shift()
    if (next !== undefined) next()
    else this.#active--
  }

  async #read (dir: string, p: Pending): Promise<void> {
    if (this.#stopped) return
    await this.#turn()
    let out: ReadOutcome | null
    try {
      if (this.#stopped) return
      this.#lastRead.set(dir, this.#t.now())
      out = await this.#o.read(dir, { history: p.history, log: p.log })
    } finally {
      this.#release()
    }
    if (out === null || this.#stopped) return
    if (out.retry && p.tries < MAX_RETRIES) this.schedule(dir, { history: true, log: false }, p.tries + 1)
    if (out.live && !this.#recheck.has(dir)) {
      const timer = this.#t.setTimeout(() => {
        this.#recheck.delete(dir)
        this.schedule(dir, { history: true, log: true })
      }, this.#o.intervalMs())
      timer.unref()
      this.#recheck.set(dir, timer)
    }
  }
}
