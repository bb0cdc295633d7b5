// The one interface every target implements. A target places a run's secrets where the run reads them and
// removes them again. runs/ is the only caller; a target never imports the lifecycle.
import type { SecretValue } from '../daemon/secret-value.js'
import type { SecretRef, StatusWarning, TargetName } from '../daemon/types.js'

/** What a target needs to know about a run: identity and owner, never the ledger record itself. */
export interface TargetRun {
  runId: string
  sessionId: string
  user: string
  uid: number
  gid: number
  workspace: string
  launchDir: string
  host: string
  /** names the run gets; revoke uses them to find what to remove even after a crash */
  names: string[]
  /** a rerun's (SPEC 11 `rerun TASK_DIR`): the `.nf-<hash>.secrets` path its task sources, where hpc writes the names */
  secretsFile?: string
}

export interface Placement {
  /** environment the run needs to find its secrets (never values) */
  env: Record<string, string>
  /** where each secret went (ARNs for aws, the store path for hpc) */
  refs: SecretRef[]
}

/** Whose leftovers a sweep may take beside this node's own. */
export interface SweepScope {
  /** is this node name gone for good (no live member for hostDeadAfterSeconds): its leftovers are nobody else's */
  goneNode?: (node: string) => boolean
}

/** How a sweep asks about a run it finds traces of. */
export type RunLiveness = 'live' | 'terminal' | 'unknown'

export interface ProvisionOptions {
  /**
   * Resolves once the run's write-ahead intent is on disk. Until then the target may prepare (resolve credentials,
   * write where nothing reads yet, inside what revoke and sweep remove) but must make nothing reachable; if it
   * rejects, the target discards what it prepared and rejects too. Without it, the intent is already on disk.
   */
  ready?: Promise<void>
}

// A target's warnings have the shape of the daemon's own (a state dir on shared storage): one type, below both.
export type { StatusWarning }

export interface TargetStatus {
  usable: boolean
  detail?: string
  warnings?: StatusWarning[]
}

export interface Target {
  readonly name: TargetName
  /**
   * Place every secret, or nothing: a failure part-way removes what was placed before throwing a coded error
   * (NFS_ERR_PROVISION_FAILED or NFS_ERR_TARGET_UNAVAILABLE). Must be safe to call again for the same run.
   * NFS_ERR_TARGET_UNAVAILABLE means refused before anything was placed: the run manager then skips the revoke.
   */
  provision (run: TargetRun, secrets: ReadonlyMap<string, SecretValue>, opts?: ProvisionOptions): Promise<Placement>
  /** Remove everything of the run. Idempotent: what is already gone counts as done. */
  revoke (run: TargetRun): Promise<void>
  /**
   * Remove leftovers of runs that are terminal or unknown to the ledger. Returns how many were removed. A target
   * sweeps what this node made; with `scope.goneNode` also what nodes gone for good made (a target that tags by node).
   */
  sweep (liveness: (runId: string) => RunLiveness, scope?: SweepScope): Promise<number>
  status (): Promise<TargetStatus>
  /** Idempotent. */
  close (): Promise<void>
}
