// The local journal of run records the cluster ledger could not take (CLUSTER.md "Engine outage"): while etcd has no
// quorum a node still ends and revokes its own runs, and the ledger writes of that wait in memory (DeferredRecords);
// this file keeps them across a crash or restart of the daemon too, so that a revoke done during the outage is not
// forgotten when the process goes before quorum returns. Written whole (temp, fsync, rename, 0600) each time the set
// changes; an empty set leaves `{"format":1,"records":[]}`. Records carry no values (SPEC: none in the ledger).
import { nfsError } from '../errors.js'
import type { RunRecord } from '../types.js'
import { AtomicJsonFile } from './atomic-file.js'

interface JournalData { format: 1, records: RunRecord[] }

export interface RecordJournal {
  /** the records kept when the daemon last stopped (or crashed); [] without a journal */
  load: () => Promise<RunRecord[]>
  /** replace the journal with these records (all of those kept in memory now) */
  save: (records: RunRecord[]) => Promise<void>
}

function validate (raw: unknown, path: string): RunRecord[] {
  const data = raw as Partial<JournalData> | null
  if (data === null || typeof data !== 'object' || data.format !== 1 || !Array.isArray(data.records)) {
    throw nfsError('NFS_ERR_STORE_UNREADABLE', [path, 'not a run record journal of format 1'])
  }
  for (const r of data.records) {
    if (typeof r?.runId !== 'string' || typeof r.state !== 'string' || typeof r.version !== 'number' || typeof r.targets !== 'object' || r.targets === null) {
      throw nfsError('NFS_ERR_STORE_UNREADABLE', [path, 'a journaled run record is malformed'])
    }
  }
  return data.records
}

/** The journal in one file (e.g. <stateDir>/ledger-journal.json). A broken file stops the start (exit 78), left as it was. */
export function fileJournal (path: string): RecordJournal {
  const file = new AtomicJsonFile<JournalData>(path, { mode: 0o600 })
  return {
    load: async () => {
      const raw = await file.read()
      return raw === null ? [] : validate(raw, path)
    },
    save: async (records) => { await file.write({ format: 1, records }) }
  }
}
