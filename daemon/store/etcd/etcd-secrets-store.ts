// The secrets store on etcd (CLUSTER.md "Keys", secret-keys.ts). Reads come from a Replica (secrets-view.ts); every
// write is one transaction comparing the mod revision of the keys it read (cas-writes.ts), a secret's metadata and
// value change together, and a workspace's secrets go with it. Same contract as the file store (test/store/contract/):
// If-Match that really fails, unconditioned writes retried on a fresh read. A write whose answer was lost after it
// committed is known by what it left (own-write.ts): a secret's sealed value holds a fresh random nonce, a tombstone
// (tombstones.ts) sits on this node's lease.
import type { Namespace } from 'etcd3'
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { isCoded, nfsError } from '../../errors.js'
import type { SecretValue } from '../../secret-value.js'
import type { Role, Scope, SecretMeta, Workspace } from '../../types.js'
import { open, seal, type Sealed } from '../crypto.js'
import type { SecretsStore, StoreChange, WriteOptions } from '../secrets-store-interface.js'
import { checkEntry, copyWorkspace, guardMemberName, guardWorkspaceName, withRole } from '../store-format.js'
import { CasWrites } from './cas-writes.js'
import { Replica } from './replica.js'
import { GONE, META, VAL, WS, WS_GONE } from './secret-keys.js'
import { SecretsView } from './secrets-view.js'
import { agreeOnKey } from './store-key.js'
import { TOMBSTONE_TTL_S, Tombstones } from './tombstones.js'

export interface EtcdSecretsStoreOptions {
  ns: Namespace
  node: string
  key: Buffer
  logger: Pick<Logger, 'info' | 'warn'>
  now?: () => Date
  /** TOMBSTONE_TTL_S by default; tests make it short */
  tombstoneTtlSeconds?: number
}

/** The etcd store, with what tests read beyond the interface. */
export type EtcdSecretsStoreHandle = SecretsStore & {
  /** tombstones this node holds in memory now */
  readonly tombstones: number
  /** the start's tidy of lease-less tombstones of older daemons: how many it put on a lease or deleted */
  readonly legacyTidied: Promise<number>
}

class EtcdSecretsStore implements SecretsStore {
  readonly #ns: Namespace
  readonly #replica: Replica
  readonly #key: Buffer
  readonly #now: () => Date
  readonly #logger: Pick<Logger, 'warn'>
  readonly #tombs: Tombstones
  // Parsed records, kept in step with the replica, and the change feed.
  readonly #view: SecretsView
  readonly #writes: CasWrites
  #closed = false

  constructor (opts: EtcdSecretsStoreOptions, replica: Replica) {
    this.#ns = opts.ns
    this.#replica = replica
    this.#key = opts.key
    this.#now = opts.now ?? (() => new Date())
    this.#logger = opts.logger
    this.#tombs = new Tombstones(opts.ns, replica, opts.tombstoneTtlSeconds ?? TOMBSTONE_TTL_S, () => this.#closed)
    this.#writes = new CasWrites(opts.ns, replica, () => this.#closed)
    this.#view = new SecretsView(replica, this.#tombs)
  }

  get tombstones (): number { return this.#tombs.size }

  // Only tests read it (through EtcdSecretsStoreHandle); the start logs the outcome.
  legacyTidied: Promise<number> = Promise.resolve(0)

  /** The start's tidy of lease-less tombstones of older daemons (tombstones.ts). */
  async tidyLegacyTombstones (): Promise<number> { return await this.#tombs.tidyLegacy() }

  get revision (): number { return this.#replica.revision }

  async settle (atLeast?: number): Promise<number> {
    if (atLeast !== undefined) {
      await this.#replica.waitFor(atLeast)
      return this.#replica.revision
    }
    return await this.#replica.barrier()
  }

  onChange (listener: (c: StoreChange) => void): () => void { return this.#view.onChange(listener) }

  listSecrets (scopes: Scope[]): SecretMeta[] { return this.#view.listSecrets(scopes) }

  getSecret (scope: Scope, name: string): SecretMeta | undefined { return this.#view.getSecret(scope, name) }

  async createSecret (scope: Scope, name: string, value: SecretValue, by: string): Promise<SecretMeta> {
    checkEntry(scope, name)
    const k = `${scope}/${name}`
    const at = this.#now().toISOString()
    const meta: SecretMeta = { name, scope, createdAt: at, createdBy: by, updatedAt: at, updatedBy: by, lastUsed: null, version: 1 }
    const sealed = JSON.stringify(seal(this.#key, scope, name, value))
    try {
      return await this.#writes.write(`secret ${k}`, { ifVersion: null }, () => ({
        compare: [[META + k, 0]],
        ops: [this.#ns.put(META + k).value(JSON.stringify(meta)), this.#ns.put(VAL + k).value(sealed), this.#ns.delete().key(GONE + k)],
        result: { ...meta },
        // The sealed value's nonce is fresh: those bytes in sval/ are this write's (its metadata may have moved on).
        mine: [{ key: VAL + k, value: sealed }]
      }), () => this.#view.meta.get(META + k))
    } catch (err) {
      if (isCoded(err, 'NFS_ERR_CONFLICT')) throw nfsError('NFS_ERR_SECRET_EXISTS', [name, scope])
      throw err
    }
  }

  async updateSecret (scope: Scope, name: string, value: SecretValue, by: string, opts?: WriteOptions): Promise<SecretMeta> {
    checkEntry(scope, name)
    const k = `${scope}/${name}`
    const sealed = JSON.stringify(seal(this.#key, scope, name, value))
    return await this.#writes.write(`secret ${k}`, opts, () => {
      const cur = this.#view.meta.get(META + k)
      const entry = this.#replica.get(META + k)
      if (cur === undefined || entry === undefined) {
        if (opts?.ifVersion != null) throw nfsError('NFS_ERR_CONFLICT', [`secret ${k} is gone`])
        throw nfsError('NFS_ERR_SECRET_NOT_FOUND', [k])
      }
      const meta: SecretMeta = { ...cur, updatedAt: this.#now().toISOString(), updatedBy: by, version: cur.version + 1 }
      return {
        compare: [[META + k, entry.mod]],
        ops: [this.#ns.put(META + k).value(JSON.stringify(meta)), this.#ns.put(VAL + k).value(sealed)],
        result: meta,
        mine: [{ key: VAL + k, value: sealed }]
      }
    }, () => this.#view.meta.get(META + k))
  }

  async deleteSecret (scope: Scope, name: string, by: string, opts?: WriteOptions): Promise<SecretMeta> {
    checkEntry(scope, name)
    const k = `${scope}/${name}`
    const lease = await this.#tombs.lease()
    return await this.#writes.write(`secret ${k}`, opts, () => {
      const cur = this.#view.meta.get(META + k)
      const entry = this.#replica.get(META + k)
      if (cur === undefined || entry === undefined) {
        if (opts?.ifVersion != null) throw nfsError('NFS_ERR_CONFLICT', [`secret ${k} is gone`])
        throw nfsError('NFS_ERR_SECRET_NOT_FOUND', [k])
      }
      const tomb = JSON.stringify({ by, version: cur.version })
      return {
        compare: [[META + k, entry.mod]],
        ops: [this.#ns.put(GONE + k).value(tomb).lease(lease), this.#ns.delete().key(META + k), this.#ns.delete().key(VAL + k)],
        result: { ...cur },
        // The secret gone and a tombstone naming this version on this node's lease: this delete's (this node's deletes
        // of one secret go one after another).
        mine: [{ key: META + k, value: null }, { key: GONE + k, value: tomb, lease }]
      }
    }, () => this.#view.meta.get(META + k)).catch((err: unknown) => {
      // A lease gone sooner than this node counted (it cannot be, but a failed write costs a grant at most): a new one next time.
      if (isCoded(err, 'NFS_ERR_CLUSTER_UNAVAILABLE')) this.#tombs.dropLease()
      throw err
    })
  }

  readValues (entries: Array<{ scope: Scope, name: string }>): Map<string, SecretValue> {
    const out = new Map<string, SecretValue>()
    for (const { scope, name } of entries) {
      const e = this.#replica.get(`${VAL}${scope}/${name}`)
      if (e !== undefined) out.set(`${scope}\0${name}`, open(this.#key, scope, name, JSON.parse(e.value.toString()) as Sealed))
    }
    return out
  }

  // lastUsed is advisory: one CAS per secret, all at once, awaited so that a listing right after shows it (as the
  // file store's does), but a failure is logged and never fails the run that used the secret.
  async markUsed (entries: Array<{ scope: Scope, name: string }>, at: string): Promise<void> {
    await Promise.all(entries.map(async ({ scope, name }) => {
      const k = `${scope}/${name}`
      await this.#writes.write(`secret ${k}`, undefined, () => {
        const cur = this.#view.meta.get(META + k)
        const entry = this.#replica.get(META + k)
        if (cur === undefined || entry === undefined) return undefined
        return { compare: [[META + k, entry.mod]], ops: [this.#ns.put(META + k).value(JSON.stringify({ ...cur, lastUsed: at }))], result: undefined }
      }).catch((err: unknown) => { this.#logger.warn({ err, scope, name }, 'lastUsed not written to the cluster') })
    }))
  }

  listWorkspaces (): Workspace[] { return this.#view.listWorkspaces() }

  getWorkspace (name: string): Workspace | undefined { return this.#view.getWorkspace(name) }

  async createWorkspace (name: string, by: string, opts?: { owner?: string | null }): Promise<Workspace> {
    guardWorkspaceName(name)
    const owner = opts?.owner ?? null
    // The same rule as the file store's (store-format.ts): the API checks the owner first, the store holds it anyway.
    if (owner !== null) guardMemberName(owner)
    const ws: Workspace = { name, members: owner === null ? {} : { [owner]: 'owner' }, groups: {}, createdAt: this.#now().toISOString(), createdBy: by, version: 1 }
    const bytes = JSON.stringify(ws)
    try {
      // The record names its creator and the millisecond: the same bytes from another node would be the same create.
      // This node's own earlier create of the name is refused before the write (the If-None-Match check, on its
      // mirror), so it cannot read back as this one.
      return await this.#writes.write(`workspace ${name}`, { ifVersion: null }, () => ({
        compare: [[WS + name, 0]], ops: [this.#ns.put(WS + name).value(bytes)], result: copyWorkspace(ws), mine: [{ key: WS + name, value: bytes }]
      }), () => this.#view.ws.get(WS + name))
    } catch (err) {
      if (isCoded(err, 'NFS_ERR_CONFLICT')) throw nfsError('NFS_ERR_WORKSPACE_EXISTS', [name])
      throw err
    }
  }

  async deleteWorkspace (name: string, opts?: WriteOptions): Promise<void> {
    // A deleted key holds nothing of ours: a client's retry after a lost answer would find the workspace gone and
    // answer NOT_FOUND (CONFLICT with If-Match) for this very delete. So the delete leaves a tombstone holding a fresh
    // nonce, on this node's tombstone lease (gone within minutes, as a secret's sdel/ key): the workspace gone and
    // that nonce there is this delete's, and only this one's.
    const missing = (): never => {
      if (opts?.ifVersion != null) throw nfsError('NFS_ERR_CONFLICT', [`workspace ${name} is gone`])
      throw nfsError('NFS_ERR_WORKSPACE_NOT_FOUND', [name])
    }
    // A name the mirror does not hold is answered before the lease is asked for: a grant needs quorum.
    if (this.#replica.get(WS + name) === undefined) missing()
    const lease = await this.#tombs.lease()
    const tomb = JSON.stringify({ nonce: randomBytes(12).toString('base64url') })
    await this.#writes.write(`workspace ${name}`, opts, () => {
      const entry = this.#replica.get(WS + name)
      if (entry === undefined) return missing()
      // The workspace's secrets go in the same transaction: no node ever sees secrets of a workspace that is gone.
      const scope = `workspace:${name}/`
      return {
        compare: [[WS + name, entry.mod]],
        ops: [
          this.#ns.delete().prefix(META + scope), this.#ns.delete().prefix(VAL + scope), this.#ns.delete().prefix(GONE + scope), this.#ns.delete().key(WS + name),
          this.#ns.put(WS_GONE + name).value(tomb).lease(lease)
        ],
        result: undefined,
        mine: [{ key: WS + name, value: null }, { key: WS_GONE + name, value: tomb, lease }]
      }
    }, () => this.#view.ws.get(WS + name)).catch((err: unknown) => {
      if (isCoded(err, 'NFS_ERR_CLUSTER_UNAVAILABLE')) this.#tombs.dropLease()
      throw err
    })
  }

  async #setRole (wsName: string, field: 'members' | 'groups', who: string, role: Role | null, opts?: WriteOptions): Promise<Workspace> {
    guardMemberName(who)
    return await this.#writes.write(`workspace ${wsName}`, opts, () => {
      const cur = this.#view.ws.get(WS + wsName)
      const entry = this.#replica.get(WS + wsName)
      if (cur === undefined || entry === undefined) throw nfsError('NFS_ERR_WORKSPACE_NOT_FOUND', [wsName])
      const ws = withRole(cur, field, who, role)
      const bytes = JSON.stringify(ws)
      // The same bytes written by another node are the same change from the same version: the result is the same.
      return { compare: [[WS + wsName, entry.mod]], ops: [this.#ns.put(WS + wsName).value(bytes)], result: copyWorkspace(ws), mine: [{ key: WS + wsName, value: bytes }] }
    }, () => this.#view.ws.get(WS + wsName))
  }

  async setMember (ws: string, user: string, role: Role | null, opts?: WriteOptions): Promise<Workspace> {
    return await this.#setRole(ws, 'members', user, role, opts)
  }

  async setGroup (ws: string, group: string, role: Role | null, opts?: WriteOptions): Promise<Workspace> {
    return await this.#setRole(ws, 'groups', group, role, opts)
  }

  counts (): { secrets: number, workspaces: number } { return this.#view.counts() }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#view.close()
    await this.#replica.close()
  }
}

/**
 * Open the store under `ns`. The first node writes the key id; every later one must hold the same key (NFS_ERR_KEY
 * otherwise), and every value is decrypted once before anything is served, as the file store does.
 */
export async function openEtcdSecretsStore (opts: EtcdSecretsStoreOptions): Promise<EtcdSecretsStoreHandle> {
  // A sealed value is up to ~88 KiB (64 KiB in base64): 32 of them are ~2.8 MiB, under the client's 4 MiB receive limit.
  const replica = new Replica(opts.ns, [META, VAL, WS, GONE, 'meta/'], opts.node, { pages: { [VAL]: 32 } })
  await replica.start()
  let id: string
  try {
    id = await agreeOnKey(opts.ns, replica, opts.key)
  } catch (err) {
    await replica.close()
    throw err
  }
  opts.logger.info({ keyId: id, revision: replica.revision }, 'cluster secrets store opened')
  const store = new EtcdSecretsStore(opts, replica)
  // In the background: a start must not wait on thousands of old keys, and a failure only leaves them for the next.
  store.legacyTidied = store.tidyLegacyTombstones().then((n) => {
    if (n > 0) opts.logger.info({ tombstones: n }, 'tombstones of older daemons put on a lease or deleted')
    return n
  }, (err: unknown) => {
    opts.logger.warn({ err }, 'tidying the tombstones of older daemons failed; the next start tries again')
    return 0
  })
  return store
}
