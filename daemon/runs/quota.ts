// Live runs per user (SPEC 11): every door into the lifecycle (POST /runs, launch, auto-runs of a watch) comes through
// RunManager.create, so the limit is kept here and not in a route. A run counts from the moment its create begins
// (reserved before the first await, so a burst of parallel requests cannot overshoot) until it is terminal. That is
// exact on one node; in a cluster the ledger's insert counts again in the same transaction (store/live-runs.ts), since
// this node does not see the arms other nodes are making.
import { limitReached, liveRunsOf } from '../store/live-runs.js'
import type { Caller, RunRecord } from '../types.js'

/**
 * Pure: is this run the caller's? By name and by the uid it was started with: an account deleted and created again
 * under the same name but a new uid is another person, and gets none of the old account's runs to see or end.
 */
export function ownsRun (caller: Pick<Caller, 'user' | 'uid'>, run: Pick<RunRecord, 'user' | 'uid'>): boolean {
  return run.user === caller.user && run.uid === caller.uid
}

/** Pure: may a user with `live` runs and `pending` creates start one more? Admins are not limited. */
export function mayStart (live: number, pending: number, limit: number, admin: boolean): boolean {
  return admin || live + pending < limit
}

export class LiveRunQuota {
  readonly #limit: number
  readonly #pending = new Map<number, number>()

  constructor (limit: number) {
    this.#limit = limit
  }

  /** Reserve a slot for a create, or throw NFS_ERR_LIMIT; the returned release is idempotent. */
  reserve (caller: Pick<Caller, 'user' | 'uid' | 'isAdmin'>, runs: () => Iterable<Pick<RunRecord, 'uid' | 'state'>>): () => void {
    if (caller.isAdmin) return () => {}
    const uid = caller.uid
    const live = liveRunsOf(runs(), uid)
    const pending = this.#pending.get(uid) ?? 0
    if (!mayStart(live, pending, this.#limit, false)) {
      throw limitReached(this.#limit, caller.user, live + pending)
    }
    this.#pending.set(uid, pending + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const n = (this.#pending.get(uid) ?? 1) - 1
      if (n <= 0) this.#pending.delete(uid)
      else this.#pending.set(uid, n)
    }
  }
}
