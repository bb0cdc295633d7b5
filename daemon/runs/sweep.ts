// The targets' sweep: leftovers of runs that are over, or that the ledger never heard of (a crash before the intent
// was written). Only runs/ calls the targets, so the sweep lives here; the daemon only schedules it. Each target
// already sweeps only what this node made (the hpc marker's node id, the aws host tag); what it asks here is whether
// a run it finds traces of may go.
import { basename, dirname } from 'node:path'
import type { RunLiveness, Target } from '../../adapters/types.js'
import type { Logger } from '../logger.js'
import type { RunLedger } from '../store/run-ledger.js'
import { isTerminal, type RunRecord, type TargetName } from '../types.js'

/**
 * What the sweep may do with a run's traces. Pure. A run being provisioned here has its traces before its intent
 * reaches the ledger: live. A run whose targets still hold something is its owner's to revoke, never the sweep's,
 * whichever node owns it (an owner elsewhere may be revoking it right now): live until every target is revoked.
 * So ownership (ownership.ts) never widens what a sweep removes: a known run's traces go only once it is terminal and
 * revoked everywhere, which is safe for any node to act on.
 */
export function sweepLiveness (run: RunRecord | undefined, provisioningHere: boolean): RunLiveness {
  if (run === undefined) return provisioningHere ? 'live' : 'unknown'
  return isTerminal(run.state) && Object.values(run.targets).every(t => t?.state === 'revoked') ? 'terminal' : 'live'
}

export interface SweepDeps {
  targets: ReadonlyMap<TargetName, Target>
  ledger: RunLedger
  /** is the run being provisioned by this node right now (its intent perhaps not yet in the ledger) */
  provisioning: (runId: string) => boolean
  log: Logger
  /** cluster mode: node names gone for good, whose leftovers this node sweeps too (their runs' liveness as above) */
  goneNode?: (node: string) => boolean
}

export async function sweepTargets (deps: SweepDeps, settle = true): Promise<void> {
  const { targets, ledger, provisioning, log, goneNode } = deps
  // "Unknown" must come from a view that holds every run acknowledged so far: a shared ledger's replica may lag
  // behind another node's intent (CLUSTER.md: never because the local node does not know it). Free on one node.
  if (settle) await ledger.settle()
  // A rerun makes the run dir of an earlier run again (adapters/hpc/secrets-file.ts): live while the rerun holds it.
  const rerunDirs = new Set(ledger.all().filter(r => r.secretsFile !== undefined && sweepLiveness(r, false) === 'live').map(r => basename(dirname(r.secretsFile!))))
  const liveness = (runId: string): RunLiveness => rerunDirs.has(runId) ? 'live' : sweepLiveness(ledger.get(runId), provisioning(runId))
  for (const [name, target] of targets) {
    if (!(await target.status()).usable) continue
    try {
      const n = await target.sweep(liveness, goneNode !== undefined ? { goneNode } : undefined)
      if (n > 0) log.warn({ target: name, removed: n }, 'swept leftovers of unknown or ended runs')
      log.debug({ target: name, removed: n }, 'sweep done')
    } catch (err) {
      log.warn({ target: name, err }, 'sweep failed; it runs again at the next start')
    }
  }
}
