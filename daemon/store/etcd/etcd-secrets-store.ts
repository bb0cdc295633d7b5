// The secrets store on etcd (CLUSTER.md "Keys"): smeta/<scope>/<name> holds a secret's metadata, sval/<scope>/<name>
// its ciphertext (the key never enters etcd), ws/<name> a workspace, meta/store the key id every node must share,
// sdel/<scope>/<name> who deleted a secret last (written with the delete, so that every node's change feed, and
// so its secret.deleted event, can say who: a watch's delete carries no value). A tombstone is needed only until every
// node's watch has told the delete: it lives on a short lease (TOMBSTONE_TTL_S, one lease a node shares between its
// deletes and grants again as it runs out), and each node forgets it once its own feed has used it, so neither etcd
// nor any node's memory grows with every name ever deleted. A node cut off for longer reads the tombstone's put back
// from the watch history on reconnect (the put carries its value), so its event still says who. wsdel/<name> is a
// workspace delete's tombstone, on the same lease: only a nonce, read back by the delete itself (not mirrored).
// Reads come from a Replica; every write is one transaction comparing the mod revision of the keys it read, a
// secret's metadata and value change together, and a workspace's secrets go with it. Same contract as the file
// store (test/store/contract/): If-Match that really fails, unconditioned writes retried on a fresh read. A write
// whose answer was lost after it committed, and that the client tried again, is known by what it left (own-write.ts):
// a secret's sealed value holds a fresh random nonce, a tombstone sits on this node's lease. When every try failed,
// the same keys are read once etcd answers again (afterLostAnswer), so every writer here shares that check.
import type { Namespace } from 'etcd3'
import { randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { isCoded, nfsError } from '../../errors.js'
import type { SecretValue } from '../../secret-value.js'
import type { Role, Scope, SecretMeta, Workspace } from '../../types.js'
import { keyId, open, seal, type Sealed } from '../crypto.js'
import type { SecretsStore, StoreChange, WriteOptions } from '../secrets-store.js'
import { checkEntry, copyWorkspace } from '../store-format.js'
import { clusterError } from './etcd-client.js'
import { afterLostAnswer, ownWriteRevision, readBack, type Written } from './own-write.js'
import { Replica, type Entry, type ReplicaChange } from './replica.js'

const META = 'smeta/'
const VAL = 'sval/'
const WS = 'ws/'
const GONE = 'sdel/'
/** a workspace delete's tombstone: its nonce, so that the delete knows itself when its answer was lost */
const WS_GONE = 'wsdel/'
const STORE_META = 'meta/store'
/** conflicts of an unconditioned write retried on a fresh read before giving up */
const RETRIES = 10
/** how long a deletion's tombstone lives in etcd, in seconds (its lease's TTL) */
export const TOMBSTONE_TTL_S = 300
/** tombstones kept in memory at most (each is forgotten once used; this bounds those whose delete never came) */
export const TOMBSTONES_MAX = 10_000

const byScopeThenName = (a: SecretMeta, b: SecretMeta): number =>
  a.scope < b.scope ? -1 : a.scope > b.scope ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0

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
  readonly #listeners = new Set<(c: StoreChange) => void>()
  // Parsed records, kept in step with the replica so that a read never parses JSON.
  readonly #meta = new Map<string, SecretMeta>()
  readonly #ws = new Map<string, Workspace>()
  // The tombstones: who deleted each secret last, and at which revision.
  readonly #gone = new Map<string, { by: string, mod: number }>()
  // This node's writes to one record go one after another: racing itself would only burn conflict retries.
  readonly #queues = new Map<string, Promise<unknown>>()
  #closed = false
  readonly #tombTtlS: number
  // The lease this node puts its tombstones on, and when it runs out by this node's clock (from before the grant).
  #tombLease: { id: string, until: number } | null = null
  #tombGrant: Promise<string> | null = null

  constructor (opts: EtcdSecretsStoreOptions, replica: Replica) {
    this.#ns = opts.ns
    this.#replica = replica
    this.#key = opts.key
    this.#now = opts.now ?? (() => new Date())
    this.#logger = opts.logger
    this.#tombTtlS = opts.tombstoneTtlSeconds ?? TOMBSTONE_TTL_S
    for (const [k, e] of replica.list(META)) this.#meta.set(k, JSON.parse(e.value.toString()) as SecretMeta)
    for (const [k, e] of replica.list(WS)) this.#ws.set(k, JSON.parse(e.value.toString()) as Workspace)
    for (const [k, e] of replica.list(GONE)) this.#remember(k.slice(GONE.length), { by: (JSON.parse(e.value.toString()) as { by: string }).by, mod: e.mod })
    replica.onChange(c => { this.#apply(c) })
  }

  #apply (c: ReplicaChange): void {
    let change: StoreChange | null = null
    if (c.key.startsWith(GONE)) {
      // A delete's transaction puts its tombstone before it deletes the secret: the watch (and a resync) tell it first.
      if (c.entry === null) this.#gone.delete(c.key.slice(GONE.length))
      else this.#remember(c.key.slice(GONE.length), { by: (JSON.parse(c.entry.value.toString()) as { by: string }).by, mod: c.entry.mod })
    } else if (c.key.startsWith(META)) {
      const before = this.#meta.get(c.key)
      if (c.entry === null) {
        this.#meta.delete(c.key)
        // A tombstone newer than the secret's last write is this delete's; none: a workspace's deletion took it.
        const tomb = this.#gone.get(c.key.slice(META.length))
        const by = tomb !== undefined && tomb.mod > (c.previous?.mod ?? 0) ? { by: tomb.by } : {}
        // Used: this delete was the one it was written for (the next delete of the name writes its own).
        if (tomb !== undefined) this.#gone.delete(c.key.slice(META.length))
        if (before !== undefined) change = { revision: c.revision, kind: 'secret', op: 'delete', scope: before.scope, name: before.name, version: before.version, ...by }
      } else {
        const m = JSON.parse(c.entry.value.toString()) as SecretMeta
        this.#meta.set(c.key, m)
        const used = before !== undefined && before.version === m.version
        change = used
          ? { revision: c.revision, kind: 'secret', op: 'used', scope: m.scope, name: m.name, version: m.version }
          : { revision: c.revision, kind: 'secret', op: 'put', scope: m.scope, name: m.name, version: m.version, by: m.updatedBy }
      }
    } else if (c.key.startsWith(WS)) {
      const before = this.#ws.get(c.key)
      if (c.entry === null) {
        this.#ws.delete(c.key)
        if (before !== undefined) change = { revision: c.revision, kind: 'workspace', op: 'delete', name: before.name, version: before.version }
      } else {
        const w = JSON.parse(c.entry.value.toString()) as Workspace
        this.#ws.set(c.key, w)
        change = { revision: c.revision, kind: 'workspace', op: 'put', name: w.name, version: w.version }
      }
    }
    if (change === null) return
    for (const l of this.#listeners) {
      try { l(change) } catch { /* not the writer's problem */ }
    }
  }

  #remember (key: string, tomb: { by: string, mod: number }): void {
    this.#gone.delete(key)
    this.#gone.set(key, tomb)
    // The oldest first (a Map keeps insertion order): one whose delete never reached this node.
    if (this.#gone.size > TOMBSTONES_MAX) this.#gone.delete(this.#gone.keys().next().value!)
  }

  get tombstones (): number { return this.#gone.size }

  // Only tests read it (through EtcdSecretsStoreHandle); the start logs the outcome.
  legacyTidied: Promise<number> = Promise.resolve(0)

  /**
   * Tombstones written by daemons older than the tombstone lease have none, and stayed in etcd for good (one key per
   * name ever deleted). Each start takes them up: a tombstone whose secret exists again (made anew since) is stale and
   * deleted; any other is put on this node's tombstone lease, so it lives as long as a fresh one (its delete may still
   * be told to a node that resyncs) and then goes. Each change compares the tombstone's mod revision (and the
   * secret's absence), so a tombstone rewritten meanwhile by a delete is left alone. Best effort: what fails waits
   * for the next start.
   */
  async tidyLegacyTombstones (): Promise<number> {
    // The mirror holds every sdel/ key with its lease as loaded (in pages: replica.ts); reading them again in one
    // range failed for good once they were past the client's receive limit.
    const legacy = this.#replica.list(GONE).filter(([, e]) => e.lease === '0')
    let done = 0
    for (const [key, e] of legacy) {
      if (this.#closed) break
      const mod = e.mod
      const secret = META + key.slice(GONE.length)
      const lease = await this.#tombstoneLease()
      const kept = await this.#ns.if(key, 'Mod', '==', mod).and(secret, 'Create', '==', 0)
        .then(this.#ns.put(key).value(e.value).lease(lease)).commit()
      if (kept.succeeded) { done++; continue }
      const dropped = await this.#ns.if(key, 'Mod', '==', mod).then(this.#ns.delete().key(key)).commit()
      if (dropped.succeeded) done++
    }
    return done
  }

  /**
   * The lease for a new tombstone: this node's current one while it has more than 40% of its TTL left (so a tombstone
   * always lives a good while), else a new one. Grants are shared by concurrent deletes. etcd only ever extends a
   * lease (a leader change renews them), so the local estimate errs on the safe side.
   */
  async #tombstoneLease (): Promise<string> {
    const cur = this.#tombLease
    if (cur !== null && cur.until - Date.now() > this.#tombTtlS * 400) return cur.id
    this.#tombGrant ??= (async () => {
      const asked = Date.now()
      try {
        const res = await this.#ns.leaseClient.leaseGrant({ TTL: this.#tombTtlS, ID: 0 })
        this.#tombLease = { id: String(res.ID), until: asked + Number(res.TTL) * 1000 }
        return this.#tombLease.id
      } catch (err) {
        throw clusterError(err, 'granting a lease for deletion tombstones')
      }
    })().finally(() => { this.#tombGrant = null })
    return await this.#tombGrant
  }

  get revision (): number { return this.#replica.revision }

  async settle (atLeast?: number): Promise<number> {
    if (atLeast !== undefined) {
      await this.#replica.waitFor(atLeast)
      return this.#replica.revision
    }
    return await this.#replica.barrier()
  }

  onChange (listener: (c: StoreChange) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  listSecrets (scopes: Scope[]): SecretMeta[] {
    const wanted = new Set<string>(scopes)
    return [...this.#meta.values()].filter(m => wanted.has(m.scope)).map(m => ({ ...m })).sort(byScopeThenName)
  }

  getSecret (scope: Scope, name: string): SecretMeta | undefined {
    const m = this.#meta.get(`${META}${scope}/${name}`)
    return m === undefined ? undefined : { ...m }
  }

  /**
   * One compare-and-swap write, retried on a fresh read when the caller named no version. `attempt` reads the
   * current record from the mirror, says which mod revision it expects (0: absent), what to write, and by which keys
   * a failed compare can still be this write's own success (`mine`: a retry by the client after a lost answer).
   */
  async #cas<R> (what: string, opts: WriteOptions | undefined, attempt: () => Step<R> | R, current?: () => { version: number } | undefined): Promise<R> {
    const run = async (): Promise<R> => {
      // The If-Match check runs in the queue, against the record as this node's earlier writes left it.
      if (current !== undefined) await this.#expect(opts, current, what)
      return await this.#casNow(what, opts, attempt)
    }
    const prev = this.#queues.get(what) ?? Promise.resolve()
    const mine = prev.then(run, run)
    const tail = mine.catch(() => {})
    this.#queues.set(what, tail)
    void tail.then(() => { if (this.#queues.get(what) === tail) this.#queues.delete(what) })
    return await mine
  }

  async #casNow<R> (what: string, opts: WriteOptions | undefined, attempt: () => Step<R> | R): Promise<R> {
    if (this.#closed) throw nfsError('NFS_ERR_STORAGE', ['the cluster store', 'it is closed'])
    for (let i = 0; ; i++) {
      const step = attempt()
      if (!isStep<R>(step)) return step
      let res
      try {
        let txn = this.#ns.if(step.compare[0]![0], step.compare[0]![1] === 0 ? 'Create' : 'Mod', '==', step.compare[0]![1])
        for (const [k, mod] of step.compare.slice(1)) txn = txn.and(k, mod === 0 ? 'Create' : 'Mod', '==', mod)
        res = await txn.then(...(step.ops as never[])).else(...readBack(this.#ns, step.mine ?? [])).commit()
      } catch (err) {
        // Every try failed, the first perhaps after it committed: what etcd holds says whether it did.
        const own = isCoded(err) ? null : await afterLostAnswer(this.#ns, step.mine ?? [])
        if (own === null) throw clusterError(err, `writing ${what}`)
        await this.#replica.waitFor(own)
        return step.result
      }
      if (res.succeeded) {
        await this.#replica.waitFor(Number(res.header.revision))
        return step.result
      }
      const own = ownWriteRevision(res, step.mine ?? [])
      if (own !== null) {
        await this.#replica.waitFor(own)
        return step.result
      }
      if (opts?.ifVersion !== undefined || i >= RETRIES) throw nfsError('NFS_ERR_CONFLICT', [`${what} changed concurrently`])
      // Another node won: read again once the mirror has its write, after a little jitter so two losers part.
      await new Promise(resolve => setTimeout(resolve, Math.random() * 20 * (i + 1)))
      await this.#replica.barrier()
    }
  }

  /** The If-Match check: against a fresh read when the mirror disagrees, so a lagging mirror is not a conflict. */
  async #expect (opts: WriteOptions | undefined, current: () => { version: number } | undefined, what: string): Promise<void> {
    if (opts?.ifVersion === undefined) return
    const matches = (): boolean => (current()?.version ?? null) === opts.ifVersion
    if (matches()) return
    await this.#replica.barrier()
    if (!matches()) throw nfsError('NFS_ERR_CONFLICT', [`${what} is at version ${current()?.version ?? 'none'}, not ${opts.ifVersion ?? 'none'} as expected`])
  }

  async createSecret (scope: Scope, name: string, value: SecretValue, by: string): Promise<SecretMeta> {
    checkEntry(scope, name)
    const k = `${scope}/${name}`
    const at = this.#now().toISOString()
    const meta: SecretMeta = { name, scope, createdAt: at, createdBy: by, updatedAt: at, updatedBy: by, lastUsed: null, version: 1 }
    const sealed = JSON.stringify(seal(this.#key, scope, name, value))
    try {
      return await this.#cas(`secret ${k}`, { ifVersion: null }, () => ({
        compare: [[META + k, 0]],
        ops: [this.#ns.put(META + k).value(JSON.stringify(meta)), this.#ns.put(VAL + k).value(sealed), this.#ns.delete().key(GONE + k)],
        result: { ...meta },
        // The sealed value's nonce is fresh: those bytes in sval/ are this write's (its metadata may have moved on).
        mine: [{ key: VAL + k, value: sealed }]
      }), () => this.#meta.get(META + k))
    } catch (err) {
      if (isCoded(err, 'NFS_ERR_CONFLICT')) throw nfsError('NFS_ERR_SECRET_EXISTS', [name, scope])
      throw err
    }
  }

  async updateSecret (scope: Scope, name: string, value: SecretValue, by: string, opts?: WriteOptions): Promise<SecretMeta> {
    checkEntry(scope, name)
    const k = `${scope}/${name}`
    const sealed = JSON.stringify(seal(this.#key, scope, name, value))
    return await this.#cas(`secret ${k}`, opts, () => {
      const cur = this.#meta.get(META + k)
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
    }, () => this.#meta.get(META + k))
  }

  async deleteSecret (scope: Scope, name: string, by: string, opts?: WriteOptions): Promise<SecretMeta> {
    checkEntry(scope, name)
    const k = `${scope}/${name}`
    const lease = await this.#tombstoneLease()
    return await this.#cas(`secret ${k}`, opts, () => {
      const cur = this.#meta.get(META + k)
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
    }, () => this.#meta.get(META + k)).catch((err: unknown) => {
      // A lease gone sooner than this node counted (it cannot be, but a failed write costs a grant at most): a new one next time.
      if (isCoded(err, 'NFS_ERR_CLUSTER_UNAVAILABLE')) this.#tombLease = null
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
      await this.#cas(`secret ${k}`, undefined, () => {
        const cur = this.#meta.get(META + k)
        const entry = this.#replica.get(META + k)
        if (cur === undefined || entry === undefined) return undefined
        return { compare: [[META + k, entry.mod]], ops: [this.#ns.put(META + k).value(JSON.stringify({ ...cur, lastUsed: at }))], result: undefined }
      }).catch((err: unknown) => { this.#logger.warn({ err, scope, name }, 'lastUsed not written to the cluster') })
    }))
  }

  listWorkspaces (): Workspace[] {
    return [...this.#ws.values()].map(copyWorkspace).sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  }

  getWorkspace (name: string): Workspace | undefined {
    const w = this.#ws.get(WS + name)
    return w === undefined ? undefined : copyWorkspace(w)
  }

  async createWorkspace (name: string, by: string, opts?: { owner?: string | null }): Promise<Workspace> {
    if (typeof name !== 'string' || !/^[^\0\s/]{1,256}$/.test(name)) throw nfsError('NFS_ERR_BAD_REQUEST', ['malformed workspace name'])
    const owner = opts?.owner ?? null
    const ws: Workspace = { name, members: owner === null ? {} : { [owner]: 'owner' }, groups: {}, createdAt: this.#now().toISOString(), createdBy: by, version: 1 }
    const bytes = JSON.stringify(ws)
    try {
      // The record names its creator and the millisecond: the same bytes from another node would be the same create.
      // This node's own earlier create of the name is refused before the write (the If-None-Match check, on its
      // mirror), so it cannot read back as this one.
      return await this.#cas(`workspace ${name}`, { ifVersion: null }, () => ({
        compare: [[WS + name, 0]], ops: [this.#ns.put(WS + name).value(bytes)], result: copyWorkspace(ws), mine: [{ key: WS + name, value: bytes }]
      }), () => this.#ws.get(WS + name))
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
    const lease = await this.#tombstoneLease()
    const tomb = JSON.stringify({ nonce: randomBytes(12).toString('base64url') })
    await this.#cas(`workspace ${name}`, opts, () => {
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
    }, () => this.#ws.get(WS + name)).catch((err: unknown) => {
      if (isCoded(err, 'NFS_ERR_CLUSTER_UNAVAILABLE')) this.#tombLease = null
      throw err
    })
  }

  async #setRole (wsName: string, field: 'members' | 'groups', who: string, role: Role | null, opts?: WriteOptions): Promise<Workspace> {
    if (typeof who !== 'string' || who === '' || who.includes('\0')) throw nfsError('NFS_ERR_BAD_REQUEST', ['malformed member name'])
    return await this.#cas(`workspace ${wsName}`, opts, () => {
      const cur = this.#ws.get(WS + wsName)
      const entry = this.#replica.get(WS + wsName)
      if (cur === undefined || entry === undefined) throw nfsError('NFS_ERR_WORKSPACE_NOT_FOUND', [wsName])
      const map = { ...cur[field] }
      if (role === null) {
        if (!Object.hasOwn(map, who)) throw nfsError('NFS_ERR_MEMBER_NOT_FOUND', [who, wsName])
        delete map[who]
      } else {
        map[who] = role
      }
      const ws: Workspace = { ...cur, [field]: map, version: cur.version + 1 }
      const bytes = JSON.stringify(ws)
      // The same bytes written by another node are the same change from the same version: the result is the same.
      return { compare: [[WS + wsName, entry.mod]], ops: [this.#ns.put(WS + wsName).value(bytes)], result: copyWorkspace(ws), mine: [{ key: WS + wsName, value: bytes }] }
    }, () => this.#ws.get(WS + wsName))
  }

  async setMember (ws: string, user: string, role: Role | null, opts?: WriteOptions): Promise<Workspace> {
    return await this.#setRole(ws, 'members', user, role, opts)
  }

  async setGroup (ws: string, group: string, role: Role | null, opts?: WriteOptions): Promise<Workspace> {
    return await this.#setRole(ws, 'groups', group, role, opts)
  }

  counts (): { secrets: number, workspaces: number } {
    return { secrets: this.#meta.size, workspaces: this.#ws.size }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#listeners.clear()
    await this.#replica.close()
  }
}

interface Step<R> { compare: Array<[string, number]>, ops: unknown[], result: R, mine?: Written[] }

function isStep<R> (x: unknown): x is Step<R> {
  return typeof x === 'object' && x !== null && 'compare' in x && 'ops' in x
}

/**
 * Open the store under `ns`. The first node writes the key id; every later one must hold the same key (NFS_ERR_KEY
 * otherwise), and every value is decrypted once before anything is served, as the file store does.
 */
export async function openEtcdSecretsStore (opts: EtcdSecretsStoreOptions): Promise<EtcdSecretsStoreHandle> {
  // A sealed value is up to ~88 KiB (64 KiB in base64): 32 of them are ~2.8 MiB, under the client's 4 MiB receive limit.
  const replica = new Replica(opts.ns, [META, VAL, WS, GONE, 'meta/'], opts.node, { pages: { [VAL]: 32 } })
  await replica.start()
  const id = keyId(opts.key)
  let stored = replica.get(STORE_META)
  if (replica.get('meta/import') !== undefined) {
    await replica.close()
    throw nfsError('NFS_ERR_STORE_UNREADABLE', ['the cluster store', 'a cluster import did not finish; run `nf-secretsd cluster import` again'])
  }
  if (stored === undefined) {
    try {
      await opts.ns.if(STORE_META, 'Create', '==', 0).then(opts.ns.put(STORE_META).value(JSON.stringify({ format: 1, keyId: id }))).commit()
    } catch (err) {
      await replica.close()
      throw clusterError(err, 'initialising the cluster store')
    }
    await replica.barrier()
    stored = replica.get(STORE_META)
  }
  const have = (JSON.parse(stored!.value.toString()) as { keyId: string }).keyId
  const where = 'the cluster store'
  if (have !== id) {
    await replica.close()
    throw nfsError('NFS_ERR_KEY', [where, `it was encrypted with key id ${have} but the key loaded has id ${id}: every node needs the same master key`])
  }
  for (const [k, e] of replica.list(VAL)) {
    const [scope, ...rest] = k.slice(VAL.length).split('/')
    try {
      open(opts.key, scope as Scope, rest.join('/'), JSON.parse(e.value.toString()) as Sealed)
    } catch (err) {
      await replica.close()
      throw nfsError('NFS_ERR_STORE_UNREADABLE', [where, `secret ${k.slice(VAL.length)} fails authentication (altered or moved)`], err)
    }
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

export type { Entry }
