// Which node answers for a run's end (CLUSTER.md "Ownership"). The lifecycle asks this face before it revokes, ends or
// probes a run, so that the same code serves one node (the file backend: this node owns everything) and a cluster
// (etcd: the node holding own/<runId> on a live lease, and only while it is not fenced).
import type { RunRecord } from '../types.js'

export interface RunOwnership {
  /** this node's name (the host name on a single node) */
  readonly node: string
  /** may this node act as the run's owner now: revoke it, end it, record its targets */
  owns: (run: RunRecord) => boolean
  /**
   * Is a node alive on `host`? Signals only the head's host can read (its pid, /proc/locks) stay with that host;
   * a run whose host has had no live node for long enough is ended by its owner instead.
   */
  hostAlive: (host: string) => boolean
  /** take over the live runs whose owner is gone; the ids adopted (none on a single node) */
  adoptOrphans: () => Promise<string[]>
  /** wait until owns() reflects every change acknowledged so far (a shared view may lag a claim just made) */
  settle?: () => Promise<void>
  /** the node answering for the run now; null: none (its node left and nobody adopted it yet, or it needs none) */
  ownerOf?: (runId: string) => string | null
  /**
   * give up a run that needs no owner any more (run-rules.ts needsOwner), so that a shared ledger does not keep an
   * owner key per run ever armed; true if released. Absent on one node: nothing to give up.
   */
  release?: (runId: string) => Promise<boolean>
  /**
   * has this node name had no live member for hostDeadAfterSeconds: a node gone for good, whose leftovers in a target
   * a live node sweeps (the sweep's `goneNode`). Absent on one node.
   */
  nodeGone?: (node: string) => boolean
  /** does this node name have a live member now (its lease key)? Absent on one node: only this node exists. */
  nodeAlive?: (node: string) => boolean
}

/** One node, one ledger: this node owns every run and its own host is the only one. */
export function localOwnership (node: string): RunOwnership {
  return {
    node,
    owns: () => true,
    hostAlive: () => true,
    adoptOrphans: async () => []
  }
}
