// The ledger's runs as counting needs them, for the status API (RunManager.countsByState) and the metrics alike: the
// hot set and the archived runs, a run in both counted once.
import type { RunLedger } from '../store/run-ledger.js'
import type { RunState, TargetName, TargetState } from '../types.js'

export type CountedRun = { state: RunState, targets: Partial<Record<TargetName, { state: TargetState } | undefined>> }

/** The archived runs come from their summaries, read from the archive once and kept in memory since (run-archive.ts). */
export async function countedRuns (ledger: Pick<RunLedger, 'all' | 'archive'>): Promise<CountedRun[]> {
  const snapshot = ledger.all()
  const hot: CountedRun[] = [...snapshot]
  const archived = await ledger.archive?.summaries()
  if (archived === undefined || archived.size === 0) return hot
  const inHot = new Set(snapshot.map(r => r.runId))
  for (const [id, s] of archived) {
    if (!inHot.has(id)) hot.push({ state: s.state, targets: Object.fromEntries(s.targets.map(([n, st]) => [n, { state: st }])) })
  }
  return hot
}

/** Runs per state, only the states some run is in (the metrics' runsByState lists every state). */
export async function countsByState (ledger: Pick<RunLedger, 'all' | 'archive'>): Promise<Partial<Record<RunState, number>>> {
  const out: Partial<Record<RunState, number>> = {}
  for (const r of await countedRuns(ledger)) out[r.state] = (out[r.state] ?? 0) + 1
  return out
}
