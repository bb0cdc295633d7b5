// What GET /status and GET /whoami answer. Loosely typed where the daemon's parts vary (a target's status, a warning):
// a client also talks to older and newer daemons, and prints what it does not know as it comes.

/** The cluster part of GET /status (CLUSTER.md): this node, etcd's health, and one line per node. */
export interface ClusterStatus { node: string, nodes: Array<{ name: string, alive: boolean, runs: number }>, etcd: { endpoints: string[], healthy: boolean, revision: number } }

/** GET /status */
export interface StatusView {
  version: string
  mode: string
  pid: number
  startedAt: string
  uptimeSeconds: number
  secrets: number
  workspaces: number
  runs: Record<string, number>
  targets: Record<string, { usable?: boolean, detail?: string, warnings?: unknown[] } | unknown>
  /** misconfigurations of the daemon itself (the state dir), each `{code, message}` */
  warnings?: unknown[]
  watches: { roots: number, launchDirs: number, degraded: unknown[], walking?: string[], limited?: string[], polledHere?: number }
  /** cluster mode only (CLUSTER.md) */
  cluster?: ClusterStatus
}

/** GET /whoami: the caller as the daemon sees them (the kernel's peer credentials and NSS), with a role per workspace. */
export interface WhoamiView {
  user: string
  uid: number
  gid: number
  groups: string[]
  admin: boolean
  roles: Record<string, string>
}
