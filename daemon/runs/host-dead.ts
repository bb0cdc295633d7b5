// The hostDeadAfterSeconds rule (CLUSTER.md "Adopting is not revoking"). A run whose head is a local process (no
// Slurm job) can be probed only from its own host: its pid and its session lock (/proc/locks) mean nothing on
// another node. When that host has had no live node for hostDeadAfterSeconds, no node will ever read those signals
// again, so the run's owner ends it as `killed` and revokes it. A head tied to a Slurm job is left to Slurm
// (squeue/sacct answer from any node); a terminal history line, an explicit revoke and the arm TTL end a run
// earlier through the usual verdicts. Pure: how long a host has been dead is the caller's clock and membership view
// (cluster/host-watch.ts), handed in as `hostAlive`.
import { sameHost } from '../rules/host-name.js'
import { isTerminal, type RunRecord } from '../types.js'

/** Is the run's head a process only its host can see? A Slurm job's state is readable from every node. */
export function headIsLocal (run: Pick<RunRecord, 'slurmJobId'>): boolean {
  return run.slurmJobId === null
}

export const HOST_DEAD_REASON = 'the head\'s host has had no live node for hostDeadAfterSeconds'

/**
 * Does the rule end this run now? `hostAlive(host)` is false only once the host has had no live node for
 * hostDeadAfterSeconds (a host that merely restarts its daemon, or whose node is partitioned for less, stays alive).
 * Null: the rule does not apply (ended already, a Slurm head, this node's own host, or the host not dead long enough).
 */
export function hostDeadEnd (
  run: Pick<RunRecord, 'state' | 'host' | 'slurmJobId'>,
  selfHost: string,
  hostAlive: (host: string) => boolean
): { state: 'killed', reason: string } | null {
  if (isTerminal(run.state) || !headIsLocal(run)) return null
  // On its own host the node reads the pid and the lock itself: those signals decide, not this rule.
  if (sameHost(run.host, selfHost)) return null
  if (hostAlive(run.host)) return null
  return { state: 'killed', reason: HOST_DEAD_REASON }
}
