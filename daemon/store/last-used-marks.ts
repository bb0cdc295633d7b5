// The file store's lastUsed marks (SecretsStore.markUsed) not yet on disk, and the timer that writes them. lastUsed is
// bookkeeping, not a change of the secret: it keeps the version, which counts value changes. It is advisory
// metadata, so an arm does not wait for a durable rewrite of the whole store for it: the mark is made in memory at
// once (listings show it) and reaches disk with the store's next write, or by a write of its own once no mark has come
// for LAST_USED_FLUSH_MS (at most LAST_USED_MAX_WINDOWS of them after the first), or at close. A crash can lose the
// marks of the last minute at most, nothing else.
import type { Logger } from 'pino'
import type { TimerHandle, Timers } from '../os/timers.js'
import { entryKey, type StoreData } from './store-format.js'

/** lastUsed marks are written once no mark has come for this long (see markUsed). */
export const LAST_USED_FLUSH_MS = 5000
/** ... and at the latest this many quiet windows after the first mark not yet on disk. */
export const LAST_USED_MAX_WINDOWS = 12

export interface UsedOptions { flushMs: number, logger: Pick<Logger, 'warn'>, timers: Timers }

/** `data` with the pending lastUsed marks (entryKey -> time) laid over it; the same object when there are none. */
export function withUsed (data: StoreData, used: ReadonlyMap<string, string>): StoreData {
  if (used.size === 0) return data
  return { ...data, secrets: data.secrets.map(s => { const at = used.get(entryKey(s.scope, s.name)); return at === undefined ? s : { ...s, lastUsed: at } }) }
}

export class PendingMarks {
  /** entryKey -> time of the marks not yet on disk */
  readonly #used = new Map<string, string>()
  #timer: TimerHandle | null = null
  /** when the oldest mark not yet on disk was made (ms), null when none is pending */
  #since: number | null = null
  readonly #opts: UsedOptions
  /** a store write of the marks alone (it takes them with it, see written()) */
  readonly #write: () => Promise<void>
  readonly #closed: () => boolean

  constructor (opts: UsedOptions, write: () => Promise<void>, closed: () => boolean) {
    this.#opts = opts
    this.#write = write
    this.#closed = closed
  }

  get size (): number {
    return this.#used.size
  }

  set (key: string, at: string): void {
    this.#used.set(key, at)
  }

  /** The marks as they are before a write: that write holds them all. */
  snapshot (): Map<string, string> {
    return new Map(this.#used)
  }

  /** A write that held `snapshot` is durable: those marks are on disk, unless made again since. */
  written (snapshot: ReadonlyMap<string, string>): void {
    for (const [k, at] of snapshot) if (this.#used.get(k) === at) this.#used.delete(k)
    if (this.#used.size === 0) this.#since = null
  }

  /** `data` with the marks made while it was written laid over it. */
  overlay (data: StoreData): StoreData {
    return withUsed(data, this.#used)
  }

  /**
   * Written once arming goes quiet (each mark pushes the write back, up to LAST_USED_MAX_WINDOWS windows): a burst of
   * arms does not share the disk and the event loop with a rewrite of the whole store (issue 18: these writes made
   * the arm's p99 in bench/ 'runs').
   */
  schedule (): void {
    const { timers, flushMs } = this.#opts
    const now = timers.now()
    this.#since ??= now
    if (this.#timer !== null) timers.clearTimeout(this.#timer)
    const latest = this.#since + flushMs * LAST_USED_MAX_WINDOWS
    this.#timer = timers.setTimeout(() => { this.#timer = null; void this.flush() }, Math.max(0, Math.min(flushMs, latest - now)))
    this.#timer.unref()
  }

  /** Write pending lastUsed marks; a failure (full disk) keeps them for the next write or a later try. */
  async flush (): Promise<void> {
    try {
      await this.#write()
    } catch (err) {
      this.#opts.logger.warn({ err, pending: this.#used.size }, 'lastUsed not written; kept for a later write')
      if (!this.#closed() && this.#timer === null) {
        this.#timer = this.#opts.timers.setTimeout(() => { this.#timer = null; void this.flush() }, this.#opts.flushMs)
        this.#timer.unref()
      }
    }
  }

  /** No write by the timer from now on (close: the store flushes once more itself). */
  stop (): void {
    if (this.#timer !== null) this.#opts.timers.clearTimeout(this.#timer)
    this.#timer = null
  }
}
