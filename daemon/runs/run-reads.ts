// What RunManager answers a caller about runs: one run, the list, the targets' status. Another user's run is never
// shown: it reads as absent, so ids cannot be probed.
import type { Target, TargetStatus } from '../../adapters/types.js'
import { isCoded, nfsError } from '../errors.js'
import { isSettled } from '../store/run-ledger.js'
import type { Caller, RunRecord, TargetName } from '../types.js'
import type { DeferredLedger } from './deferred-records.js'
import { ownsRun } from './quota.js'
import type { RunView } from './service.js'

type Ledger = Pick<DeferredLedger, 'get' | 'all' | 'archive'>

export function view (run: RunRecord): RunView {
  const { version: _version, ...rest } = run
  return rest
}

function notFound (runId: string): Error {
  return nfsError('NFS_ERR_RUN_NOT_FOUND', [JSON.stringify(runId.slice(0, 40))])
}

/** The run in the hot set, if the caller may see it. */
export function visible (ledger: Ledger, caller: Caller, runId: string): RunRecord {
  const run = ledger.get(runId)
  if (run === undefined || (!ownsRun(caller, run) && !caller.isAdmin)) throw notFound(runId)
  return run
}

/** visible(), or the run from the archive when it has left the hot set (the same answer for another user's run). */
export async function visibleAnywhere (ledger: Ledger, caller: Caller, runId: string): Promise<RunRecord> {
  const archive = ledger.archive
  if (archive === undefined || ledger.get(runId) !== undefined) return visible(ledger, caller, runId)
  // Not hot: moved before the get above, so its append is already durable and find sees it.
  const run = await archive.find(runId)
  if (run === undefined || (!ownsRun(caller, run) && !caller.isAdmin)) throw notFound(runId)
  return run
}

export async function listRuns (ledger: Ledger, caller: Caller, all: boolean): Promise<RunView[]> {
  const mine = (r: RunRecord): boolean => ownsRun(caller, r) || caller.isAdmin
  // The hot set first, then the archive: a run moved meanwhile was in the one or is already in the other (its
  // append is durable before it leaves the hot set); one in both (a crash between the two) counts once, hot.
  const hot = ledger.all().filter(mine)
  // Without --all a settled run is not listed, and every archived run is settled: the archive is not read.
  if (!all || ledger.archive === undefined) return hot.filter(r => all || !isSettled(r)).map(view)
  const inHot = new Set(hot.map(r => r.runId))
  const archived = (await ledger.archive.list()).filter(r => mine(r) && !inHot.has(r.runId))
  return [...archived, ...hot].map(view)
}

/** Each target's own status; one that fails to answer reads as unusable, with its error's code. */
export async function targetStatus (targets: ReadonlyMap<TargetName, Target>): Promise<Record<string, TargetStatus>> {
  const out: Record<string, TargetStatus> = {}
  for (const [name, t] of targets) {
    try {
      out[name] = await t.status()
    } catch (err) {
      out[name] = { usable: false, detail: isCoded(err) ? err.code : 'status check failed' }
    }
  }
  return out
}
