// Lanes: work keyed by user, one step after another within a key, keys independent of each other. A user can make
// their own work slow (a child they stop, until its deadline; a Slurm job id that takes a probe to its timeout), so
// that work must only ever delay the same user's next step, never another user's.
// A kick while the lane is busy is not queued a second time: it asks the running lane for one more round when it is
// done, so a burst of kicks costs at most one extra round, and a change made during a round is never missed.

export class Lanes {
  readonly #running = new Map<string, Promise<void>>()
  readonly #again = new Set<string>()
  readonly #work = new Map<string, () => Promise<void>>()
  readonly #onError: (key: string, err: unknown) => void

  constructor (onError: (key: string, err: unknown) => void) {
    this.#onError = onError
  }

  /** Run `work` in `key`'s lane now, or once more after the round in progress. Resolves when the lane is idle. */
  kick (key: string, work: () => Promise<void>): Promise<void> {
    this.#work.set(key, work)
    const running = this.#running.get(key)
    if (running !== undefined) {
      this.#again.add(key)
      return running
    }
    const lane = (async () => {
      do {
        this.#again.delete(key)
        try {
          await this.#work.get(key)!()
        } catch (err) {
          this.#onError(key, err)
        }
      } while (this.#again.has(key))
    })().finally(() => {
      this.#running.delete(key)
      this.#work.delete(key)
    })
    this.#running.set(key, lane)
    return lane
  }

  busy (key: string): boolean {
    return this.#running.has(key)
  }

  get size (): number {
    return this.#running.size
  }

  /** Resolves when every lane running now (and the rounds they were asked for) is done. */
  async idle (): Promise<void> {
    while (this.#running.size > 0) await Promise.all([...this.#running.values()])
  }
}
