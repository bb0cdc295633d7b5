// What every secrets store is (the file store here, the etcd store in etcd/): its reads, its record-level
// compare-and-swap writes and its change feed. test/store/contract/ holds the suite every implementation must pass.
import type { SecretValue } from '../secret-value.js'
import type { Role, Scope, SecretMeta, Workspace } from '../types.js'

/**
 * If-Match for a write: the version of the record the caller read (null: it must not exist yet). A record that has
 * moved on since fails the write with NFS_ERR_CONFLICT. Without it the write applies to whatever is current.
 */
export interface WriteOptions { ifVersion?: number | null }

/**
 * One change a reader can see, in revision order: what the event bus, derived caches and other nodes follow.
 * Never a value: a change names the record, the store's revision after it and the record's new version, and `by`,
 * who made a put or a delete (absent for a lastUsed mark and for the secrets a workspace's deletion takes along).
 */
export type StoreChange =
  | { revision: number, kind: 'secret', op: 'put' | 'delete' | 'used', scope: Scope, name: string, version: number, by?: string }
  | { revision: number, kind: 'workspace', op: 'put' | 'delete', name: string, version: number }

/**
 * The secrets store. Reads are synchronous and answer from this node's view, which reflects `revision`; a read
 * that must not be stale (a role check before placing secrets, a retry after a conflict) first awaits
 * `settle()`, which resolves once the view has caught up with every write acknowledged anywhere (a file store is
 * always caught up; a shared one waits for its replica). Writes are record-level compare-and-swap.
 */
export interface SecretsStore {
  /** the revision the synchronous reads reflect; it only grows, and every change a reader can see raises it */
  readonly revision: number
  /** resolve once the view reflects at least `atLeast` (default: every write acknowledged so far); the revision reached */
  settle: (atLeast?: number) => Promise<number>
  /** follow every change from now on, in revision order; returns the unsubscribe function */
  onChange: (listener: (change: StoreChange) => void) => () => void
  listSecrets: (scopes: Scope[]) => SecretMeta[]
  getSecret: (scope: Scope, name: string) => SecretMeta | undefined
  /** create only: NFS_ERR_SECRET_EXISTS when the name is taken */
  createSecret: (scope: Scope, name: string, value: SecretValue, by: string) => Promise<SecretMeta>
  updateSecret: (scope: Scope, name: string, value: SecretValue, by: string, opts?: WriteOptions) => Promise<SecretMeta>
  deleteSecret: (scope: Scope, name: string, by: string, opts?: WriteOptions) => Promise<SecretMeta>
  readValues: (entries: Array<{ scope: Scope, name: string }>) => Map<string, SecretValue>
  markUsed: (entries: Array<{ scope: Scope, name: string }>, at: string) => Promise<void>
  listWorkspaces: () => Workspace[]
  getWorkspace: (name: string) => Workspace | undefined
  /** create only; `owner` is set in the same write, so no crash leaves a workspace nobody owns */
  createWorkspace: (name: string, by: string, opts?: { owner?: string | null }) => Promise<Workspace>
  /** the workspace and its secrets go in one write */
  deleteWorkspace: (name: string, opts?: WriteOptions) => Promise<void>
  setMember: (ws: string, user: string, role: Role | null, opts?: WriteOptions) => Promise<Workspace>
  setGroup: (ws: string, group: string, role: Role | null, opts?: WriteOptions) => Promise<Workspace>
  counts: () => { secrets: number, workspaces: number }
  close: () => Promise<void>
}
