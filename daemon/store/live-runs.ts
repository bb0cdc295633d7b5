// Live runs per user (SPEC 11, limits.liveRunsPerUser), as the ledgers check it at the insert. The lifecycle reserves
// a slot before it provisions (runs/quota.ts), which is exact on one node; in a cluster each node sees only its own
// pending arms, so two nodes arming for one user at the same instant could each pass. The insert therefore counts
// again, in the ledger, where a shared one can make the count and the insert one compare-and-swap.
import { nfsError } from '../errors.js'
import { isTerminal, type RunRecord } from '../types.js'

/** What an insert may also check. */
export interface InsertOptions {
  /** refuse (NFS_ERR_LIMIT) when the run's uid already has this many live runs in the ledger; none: no limit (admins) */
  liveLimit?: number
}

/** Pure: live runs of a uid in a ledger snapshot. */
export function liveRunsOf (runs: Iterable<Pick<RunRecord, 'uid' | 'state'>>, uid: number): number {
  let n = 0
  for (const r of runs) if (r.uid === uid && !isTerminal(r.state)) n++
  return n
}

/** The error of a refused insert (the same code and advice as the reservation's). */
export function limitReached (limit: number, user: string, live: number): Error {
  return nfsError('NFS_ERR_LIMIT', [`liveRunsPerUser (${limit}): ${user} has ${live} live runs; end or revoke some first (nf-secrets runs list)`])
}
