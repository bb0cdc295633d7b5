// Domain types shared by the daemon's rooms, the adapters and the CLI. No values of secrets live here:
// values travel only as SecretValue.

export const ROLES = ['owner', 'admin', 'maintain', 'launch', 'connect', 'view'] as const
export type Role = typeof ROLES[number]

export type Mode = 'user' | 'system'

/** Who is calling, as the kernel told us (SO_PEERCRED) and NSS resolved it. */
export interface Caller {
  user: string
  uid: number
  gid: number
  pid: number
  /** names of all the user's groups, primary included */
  groups: string[]
  gids: number[]
  /** uid 0, a member of adminGroup, or the daemon's own user in user mode */
  isAdmin: boolean
}

export type Scope = `workspace:${string}` | `user:${string}`

export interface SecretMeta {
  name: string
  scope: Scope
  createdAt: string
  createdBy: string
  updatedAt: string
  updatedBy: string
  lastUsed: string | null
  version: number
}

export interface Workspace {
  name: string
  /** user name -> role */
  members: Record<string, Role>
  /** Unix group name -> role */
  groups: Record<string, Role>
  createdAt: string
  createdBy: string
  version: number
}

/** A misconfiguration `status` can explain: `code` is stable (NFS_WARN_*, docs/config.md), `message` is for people. */
export interface StatusWarning {
  code: string
  message: string
  /** the paths it is about, as the message names them (a test or a script reads these, never the message) */
  paths: string[]
}

export const TARGET_NAMES = ['hpc', 'aws', 'memory'] as const
export type TargetName = typeof TARGET_NAMES[number]

export const RUN_MODES = ['run', 'arm', 'launch', 'auto'] as const
export type RunMode = typeof RUN_MODES[number]

export const LIVE_STATES = ['armed', 'running'] as const
export const TERMINAL_STATES = ['completed', 'failed', 'killed', 'expired'] as const
export type RunState = typeof LIVE_STATES[number] | typeof TERMINAL_STATES[number]

/** Per target: `provisioning` is the write-ahead intent, recorded before the target is touched. */
export type TargetState = 'provisioning' | 'provisioned' | 'revoking' | 'revoked' | 'revoke_failed'

export interface SecretRef {
  name: string
  /** AWS ARN, or the store path for hpc */
  ref: string
}

export interface TargetRecord {
  state: TargetState
  attempts: number
  nextAttemptAt: string | null
  lastError: { code: string, message: string } | null
  refs: SecretRef[]
  revokedAt: string | null
}

export interface RunRecord {
  runId: string
  sessionId: string
  user: string
  uid: number
  gid: number
  workspace: string
  launchDir: string
  host: string
  mode: RunMode
  names: string[]
  targets: Partial<Record<TargetName, TargetRecord>>
  state: RunState
  env: Record<string, string>
  createdAt: string
  startedAt: string | null
  endedAt: string | null
  expiresAt: string | null
  endReason: string | null
  exitCode: number | null
  signal: string | null
  /** the wrapper, PTY child or Nextflow process we can probe for liveness */
  pid: number | null
  /** start time of pid in clock ticks since boot (/proc/PID/stat field 22), against pid reuse */
  pidStart: number | null
  slurmJobId: string | null
  runName: string | null
  /** history lines in the launch dir when the run was armed: a resumed run is the first new one after */
  historyMark: number | null
  /**
   * Names whose value holds `$`, in a run with the hpc target: a Nextflow before 24.04.2 expands it in its tasks.
   * Names only (SPEC: no value in the ledger); absent when there are none.
   */
  dollarNames?: string[]
  /** a rerun's (`nf-secrets rerun`): the `.nf-<hash>.secrets` path its task sources, the hpc target's only placement */
  secretsFile?: string
  /** what the user should know about the run, once each: `nextflow-dollar` (see monitor.ts) */
  warnings?: string[]
  /** a launched run's: the node whose PTY host runs its command (absent on records of older daemons) */
  launchedBy?: string
  /**
   * A launched run ended otherwise than by its command's own exit (a revoke, its owner's end): that its command is gone
   * too, written by the launching node once it saw it go, with how it ended. Another node that owns the run revokes
   * only after it (runs/command-gone.ts): the command first, then its secrets, as on one node.
   */
  commandExit?: { at: string, exitCode: number | null, signal: string | null }
  version: number
}

export function isTerminal (state: RunState): boolean {
  return (TERMINAL_STATES as readonly string[]).includes(state)
}
