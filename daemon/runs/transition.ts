// Compare-and-swap on a run record, retried when another writer got there first (the watcher and the API may both
// try to end the same run): the change is re-applied to the fresh record, and may decline by returning null.
import { isCoded } from '../errors.js'
import type { RunLedger, UpdateOptions } from '../store/run-ledger.js'
import type { RunRecord } from '../types.js'
import type { DeferredLedger } from './deferred-records.js'

type Change = (run: RunRecord) => RunRecord | null

// A conflict means another writer got there first: the retry reads again only once the ledger reflects every write
// acknowledged so far (settle), or a shared ledger's lagging replica would fail all ten tries within microseconds.
async function retried<T> (ledger: RunLedger, runId: string, step: (version: number) => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    if (attempt > 0) await ledger.settle()
    const cur = ledger.get(runId)
    if (cur === undefined) throw new Error(`run ${runId} vanished from the ledger`)
    try {
      return await step(cur.version)
    } catch (err) {
      if (!isCoded(err, 'NFS_ERR_CONFLICT') || attempt >= 10) throw err
    }
  }
}

/** A durable change: it counts only once written (a storage error rejects and leaves the record as it was). */
export async function withRun (ledger: RunLedger, runId: string, change: Change, opts?: UpdateOptions): Promise<RunRecord> {
  return await retried(ledger, runId, async version => await ledger.update(runId, version, change, opts))
}

/**
 * A change that must hold even when the ledger cannot be written (a full disk, a cluster without quorum): the revoke
 * path, which is idempotent and must not wait. `durable: false` says the change is kept in memory only for now.
 */
export async function recordRun (ledger: DeferredLedger, runId: string, change: Change, opts?: UpdateOptions): Promise<{ run: RunRecord, durable: boolean }> {
  return await retried(ledger, runId, async version => await ledger.recordBestEffort(runId, version, change, opts))
}
