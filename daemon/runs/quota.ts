// Live runs per user (SPEC 11): every door into the lifecycle (POST /runs, launch, auto-runs of a watch) comes through
// RunManager.create, so the limit is kept here and not in a route. A run counts from the moment its create begins
// (reserved before the first await, so a burst of parallel requests cannot overshoot) until it is terminal.
import { nfsError } from '../errors.js'
import { isTerminal, type Caller, type RunRecord } from '../types.js'

/**
 * Pure: is this run the caller's? By name and by the uid it was started with: an account deleted and created again
 * under the same name but a new uid is another person, and gets none of the old account's runs to see or end.
 */
export function ownsRun (caller: Pick<Caller, 'user' | 'uid'>, run: Pick<RunRecord, 'user' | 'uid'>): boolean {
  return run.user === caller.user && run.uid === caller.uid
}

/** Pure: live runs of a uid in a ledger snapshot. */
export function liveRunsOf (runs: Iterable<Pick<RunRecord, 'uid' | 'state'>>, uid: number): number {
  let n = 0
  for (const r of runs) if (r.uid === uid && !isTerminal(r.state)) n++
  return n
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
      throw nfsError('NFS_ERR_LIMIT', [`liveRunsPerUser (${this.#limit}): ${caller.user} has ${live + pending} live runs; end or revoke some first (nf-secrets runs list)`])
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
