// Compare-and-swap on a run record, retried when another writer got there first (the watcher and the API may both
// try to end the same run): the change is re-applied to the fresh record, and may decline by returning null.
import { isCoded } from '../errors.js'
import type { RunLedger } from '../store/run-ledger.js'
import type { RunRecord } from '../types.js'

export async function withRun (ledger: RunLedger, runId: string, change: (run: RunRecord) => RunRecord | null): Promise<RunRecord> {
  for (let attempt = 0; ; attempt++) {
    const cur = ledger.get(runId)
    if (cur === undefined) throw new Error(`run ${runId} vanished from the ledger`)
    try {
      return await ledger.update(runId, cur.version, change)
    } catch (err) {
      if (!isCoded(err, 'NFS_ERR_CONFLICT') || attempt >= 10) throw err
    }
  }
}
