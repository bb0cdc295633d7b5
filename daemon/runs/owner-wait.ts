// An explicit revoke, or a wrapper's end, that reaches a node which does not own the run (CLUSTER.md: only the owner
// revokes): the end is recorded here and the owner revokes on seeing it. The caller still gets one answer, as on one
// node: this waits for the owner's attempt to reach the ledger, up to a deadline, then answers with the record as it
// is (its targets still `revoking`: the CLI says so and exits 1, and the owner finishes it later).
import type { RunLedger } from '../store/run-ledger.js'
import { isTerminal, type RunRecord } from '../types.js'
import type { RunOwnership } from './ownership.js'

export const OWNER_REVOKE_WAIT_MS = 10_000

/** Has the owner tried every target (each revoked, or failed and queued for retry)? Pure. */
export function ownerAnswered (run: Pick<RunRecord, 'targets'>): boolean {
  return Object.values(run.targets).every(t => t === undefined || t.state === 'revoked' || t.state === 'revoke_failed')
}

/** The run once ownerAnswered, or as it is after `waitMs`. Follows the ledger's change feed, no polling. */
export async function awaitOwnerRevoke (ledger: RunLedger, runId: string, waitMs: number): Promise<RunRecord | undefined> {
  const now = ledger.get(runId)
  if (now === undefined || ownerAnswered(now)) return now
  return await new Promise(resolve => {
    const finish = (): void => {
      clearTimeout(timer)
      unfollow()
      resolve(ledger.get(runId))
    }
    const unfollow = ledger.onChange(c => {
      const run = c.runId === runId ? ledger.get(runId) : undefined
      if (run !== undefined && ownerAnswered(run)) finish()
    })
    // Not unref'd: a request is waiting on it, and it is bounded and cleared on the owner's answer.
    const timer = setTimeout(finish, waitMs)
  })
}

/**
 * An end (explicit revoke, wrapper's exit) on a node that does not own the run only records it; the owner revokes it
 * when the ledger change reaches it (CLUSTER.md "Ownership"), within milliseconds. The caller waits for that outcome,
 * so `nf-secrets runs revoke` on any node says revoked (exit 0) as on the owner. On the owner, and on one node, it
 * answers at once. No owner (its node left, nobody adopted it yet): nobody to wait for.
 */
export async function ownersAnswer (run: RunRecord, ledger: RunLedger, ownership: RunOwnership, waitMs: number): Promise<RunRecord> {
  if (!isTerminal(run.state) || ownership.owns(run) || ownerAnswered(run)) return run
  if (ownership.ownerOf?.(run.runId) === null) {
    // No owner: its node left and nobody adopted it yet, or it needs none any more: its owner revoked it and gave
    // its key up a moment ago (cluster/ownership.ts release), which the `run` in hand, read before, does not show
    // yet. Answer with the record as the settled ledger has it, not with that stale one.
    await ledger.settle().catch(() => {})
    return ledger.get(run.runId) ?? run
  }
  return await awaitOwnerRevoke(ledger, run.runId, waitMs) ?? run
}
