// Which of a run's end signals this node may act on (CLUSTER.md "Ownership", "Adopting is not revoking"). Pure: the
// monitor asks it before it probes a run, and reads only what it allows.
// - A run this node does not own: nothing. Its owner probes, ends and revokes it; this node leaves it alone.
// - A run it owns whose head's host is this host: every signal, as on a single node.
// - A run it owns whose head's host is another (adopted after its node died): only what every node reads alike, the
//   history line and .nextflow.log in the launch dir on the shared filesystem, the Slurm job, the arm TTL and an
//   explicit revoke. The pid, a `-bg` pid file's pid and the session lock (/proc/locks) would be read in THIS host's
//   /proc and say "dead" of a head that still runs elsewhere. When that host counts dead (ownership.hostAlive false:
//   the hostDeadAfterSeconds rule, host-dead.ts), a local head ends as killed ('hostDead').
import { sameHost } from '../../rules/host-name.js'
import type { RunRecord } from '../../types.js'
import { headIsLocal } from '../host-dead.js'

export type EndSignal =
  /** the run's line in <launchDir>/.nextflow/history */
  | 'history'
  /** .nextflow.log's session markers (Goodbye, run name, version) */
  | 'log'
  /** Slurm's record of the job hosting the head (squeue answers from any node) */
  | 'slurm'
  /** an armed run's TTL */
  | 'ttl'
  /** the run's pid, the Nextflow pid in the log or a `-bg` pid file: /proc of the head's host */
  | 'pid'
  /** the session's LevelDB LOCK held, from /proc/locks of the head's host */
  | 'lock'
  /** the PTY host holds the launched command and records its end itself */
  | 'launched'
  /** the head's host has had no live node for hostDeadAfterSeconds: a local head ends as killed */
  | 'hostDead'

const SHARED: readonly EndSignal[] = ['history', 'log', 'slurm', 'ttl']
const HOST_ONLY: readonly EndSignal[] = ['pid', 'lock', 'launched']

export interface Here {
  /** this node's host name */
  host: string
  /** does this node own the run now (RunOwnership.owns) */
  owns: boolean
}

/** The signals this node may read to end `run` (none: not its run). An explicit revoke is always the owner's. */
export function endSignals (run: Pick<RunRecord, 'host' | 'slurmJobId'>, here: Here): ReadonlySet<EndSignal> {
  if (!here.owns) return new Set()
  if (sameHost(run.host, here.host)) return new Set([...SHARED, ...HOST_ONLY])
  return new Set(headIsLocal(run) ? [...SHARED, 'hostDead'] : SHARED)
}

/** Are the host-only signals of `run` this node's to read (its head runs on this host)? */
export function headHere (run: Pick<RunRecord, 'host'>, host: string): boolean {
  return sameHost(run.host, host)
}
