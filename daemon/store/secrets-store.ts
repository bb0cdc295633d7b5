// The encrypted secrets store (SPEC sections 3 and 4): store.json in the state dir, 0600, on lowdb 7 with an
// atomic, durable adapter. Values are sealed one by one (crypto.ts) and decrypted only in readValues, when a
// run needs them; memory holds ciphertext like the file does.
//
// Mutations run one at a time. Each builds the next state from the committed one without touching it, writes
// that durably, and only then makes it the committed state: a failed write leaves memory and disk as they were.
// Every record has a version; a caller may name the version it read (If-Match) and the write then fails with
// NFS_ERR_CONFLICT if the record moved on, as a transaction comparing etcd mod revisions would. Every visible
// change raises the store's revision and is told to onChange listeners, which is what a shared backend's watch
// feeds; test/store/contract/ holds the suite every implementation must pass.
import { Low } from 'lowdb'
import type { Logger } from 'pino'
import { nfsError } from '../errors.js'
import type { SecretValue } from '../secret-value.js'
import type { Role, Scope, SecretMeta, Workspace } from '../types.js'
import { AtomicJsonFile, parseJsonText, readFileBytes, sweepTempFiles } from './atomic-file.js'
import { prestartVerifier, PRESTART_MIN_BYTES, verifyAside, type PrestartedVerifier } from './verify-aside.js'
import { sealedStoreText, sealMatches } from './store-seal.js'
import { realTimers, type TimerHandle, type Timers } from '../os/timers.js'
import { keyId, open, seal } from './crypto.js'
import { casSecret, casWorkspace, checkEntry, copyWorkspace, emptyStore, entryKey, toMeta, validateStore, verifyKeyId } from './store-format.js'
import type { SecretRecord, StoreData } from './store-format.js'

export { rotateKey } from './rotate-key.js'
export type { RotateKeyOptions, RotateKeyResult } from './rotate-key.js'

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

export interface OpenSecretsStoreOptions {
  path: string
  key: Buffer
  logger: Pick<Logger, 'info' | 'warn' | 'debug'>
  /** clock for createdAt/updatedAt; tests pin it */
  now?: () => Date
  /** how long lastUsed marks may wait in memory before a store write of their own (default 5 s) */
  lastUsedFlushMs?: number
  /** the timers of that write (tests move them by hand) */
  timers?: Timers
}

/** lastUsed marks are written once no mark has come for this long (see markUsed). */
export const LAST_USED_FLUSH_MS = 5000
/** ... and at the latest this many quiet windows after the first mark not yet on disk. */
export const LAST_USED_MAX_WINDOWS = 12

interface UsedOptions { flushMs: number, logger: Pick<Logger, 'warn'>, timers: Timers }

/** `data` with the pending lastUsed marks (entryKey -> time) laid over it; the same object when there are none. */
function withUsed (data: StoreData, used: ReadonlyMap<string, string>): StoreData {
  if (used.size === 0) return data
  return { ...data, secrets: data.secrets.map(s => { const at = used.get(entryKey(s.scope, s.name)); return at === undefined ? s : { ...s, lastUsed: at } }) }
}

type Mutation<R> = (data: StoreData) => { next: StoreData, result: R, changes: Array<DistributiveOmit<StoreChange, 'revision'>> }
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never

/** The If-Match check of a write against the record it would replace (undefined when absent). */
function expectVersion (opts: WriteOptions | undefined, current: { version: number } | undefined, what: string): void {
  if (opts?.ifVersion === undefined) return
  const have = current?.version ?? null
  if (have !== opts.ifVersion) throw nfsError('NFS_ERR_CONFLICT', [`${what} is at version ${have ?? 'none'}, not ${opts.ifVersion ?? 'none'} as expected`])
}

const byScopeThenName = (a: SecretMeta, b: SecretMeta): number =>
  a.scope < b.scope ? -1 : a.scope > b.scope ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0

class LowSecretsStore implements SecretsStore {
  readonly #db: Low<StoreData>
  readonly #adapter: AtomicJsonFile<StoreData>
  readonly #key: Buffer
  readonly #now: () => Date
  #chain: Promise<unknown> = Promise.resolve()
  #closed = false
  #revision = 0
  readonly #listeners = new Set<(change: StoreChange) => void>()

  // lastUsed marks not yet on disk, and the timer that writes them (markUsed).
  readonly #used = new Map<string, string>()
  #usedTimer: TimerHandle | null = null
  /** when the oldest mark not yet on disk was made (ms), null when none is pending */
  #usedSince: number | null = null
  readonly #usedOpts: UsedOptions

  constructor (db: Low<StoreData>, adapter: AtomicJsonFile<StoreData>, key: Buffer, now: () => Date, usedOpts: UsedOptions) {
    this.#usedOpts = usedOpts
    this.#db = db
    this.#adapter = adapter
    this.#key = key
    this.#now = now
  }

  #find (scope: Scope, name: string): SecretRecord | undefined {
    return this.#db.data.secrets.find(s => s.scope === scope && s.name === name)
  }

  #findWs (name: string): Workspace | undefined {
    return this.#db.data.workspaces.find(w => w.name === name)
  }

  async #mutate<R> (fn: Mutation<R>): Promise<R> {
    const run = async (): Promise<R> => {
      if (this.#closed) throw nfsError('NFS_ERR_STORAGE', [this.#adapter.path, 'the store is closed'])
      const { next, result, changes } = fn(this.#db.data)
      if (next !== this.#db.data) {
        // `next` holds every lastUsed mark made so far; marks made while it is written are laid over it after.
        const used = new Map(this.#used)
        await this.#adapter.write(next)
        for (const [k, at] of used) if (this.#used.get(k) === at) this.#used.delete(k)
        if (this.#used.size === 0) this.#usedSince = null
        this.#db.data = withUsed(next, this.#used)
        this.#emit(changes)
      }
      return result
    }
    const p = this.#chain.then(run, run)
    this.#chain = p.catch(() => {})
    return await p
  }

  /** Raise the revision once per change and tell the listeners; a listener's failure is not the writer's. */
  #emit (changes: Array<DistributiveOmit<StoreChange, 'revision'>>): void {
    for (const c of changes) {
      const change = { ...c, revision: ++this.#revision } as StoreChange
      for (const l of this.#listeners) {
        try { l(change) } catch { /* a listener's bug must not fail a write that is already durable */ }
      }
    }
  }

  get revision (): number {
    return this.#revision
  }

  // One process holds the file (the state-dir lock), so its view is never behind an acknowledged write.
  async settle (_atLeast?: number): Promise<number> {
    return this.#revision
  }

  onChange (listener: (change: StoreChange) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  listSecrets (scopes: Scope[]): SecretMeta[] {
    const wanted = new Set<string>(scopes)
    return this.#db.data.secrets.filter(s => wanted.has(s.scope)).map(toMeta).sort(byScopeThenName)
  }

  getSecret (scope: Scope, name: string): SecretMeta | undefined {
    const r = this.#find(scope, name)
    return r === undefined ? undefined : toMeta(r)
  }

  async createSecret (scope: Scope, name: string, value: SecretValue, by: string): Promise<SecretMeta> {
    checkEntry(scope, name)
    return await this.#mutate(data => {
      if (data.secrets.some(s => s.scope === scope && s.name === name)) throw nfsError('NFS_ERR_SECRET_EXISTS', [name, scope])
      const at = this.#now().toISOString()
      const rec: SecretRecord = {
        name,
        scope,
        createdAt: at,
        createdBy: by,
        updatedAt: at,
        updatedBy: by,
        lastUsed: null,
        version: 1,
        sealed: seal(this.#key, scope, name, value)
      }
      return { next: casSecret(data, null, rec, scope, name), result: toMeta(rec), changes: [{ kind: 'secret', op: 'put', scope, name, version: 1, by }] }
    })
  }

  async updateSecret (scope: Scope, name: string, value: SecretValue, by: string, opts?: WriteOptions): Promise<SecretMeta> {
    checkEntry(scope, name)
    return await this.#mutate(data => {
      const cur = data.secrets.find(s => s.scope === scope && s.name === name)
      if (cur === undefined && opts?.ifVersion == null) throw nfsError('NFS_ERR_SECRET_NOT_FOUND', [`${scope}/${name}`])
      expectVersion(opts, cur, `secret ${scope}/${name}`)
      const rec: SecretRecord = {
        ...cur!,
        updatedAt: this.#now().toISOString(),
        updatedBy: by,
        version: cur!.version + 1,
        sealed: seal(this.#key, scope, name, value)
      }
      return { next: casSecret(data, cur!, rec, scope, name), result: toMeta(rec), changes: [{ kind: 'secret', op: 'put', scope, name, version: rec.version, by }] }
    })
  }

  async deleteSecret (scope: Scope, name: string, by: string, opts?: WriteOptions): Promise<SecretMeta> {
    checkEntry(scope, name)
    return await this.#mutate(data => {
      const cur = data.secrets.find(s => s.scope === scope && s.name === name)
      if (cur === undefined && opts?.ifVersion == null) throw nfsError('NFS_ERR_SECRET_NOT_FOUND', [`${scope}/${name}`])
      expectVersion(opts, cur, `secret ${scope}/${name}`)
      return { next: casSecret(data, cur!, null, scope, name), result: toMeta(cur!), changes: [{ kind: 'secret', op: 'delete', scope, name, version: cur!.version, by }] }
    })
  }

  readValues (entries: Array<{ scope: Scope, name: string }>): Map<string, SecretValue> {
    const out = new Map<string, SecretValue>()
    for (const { scope, name } of entries) {
      const r = this.#find(scope, name)
      if (r !== undefined) out.set(entryKey(scope, name), open(this.#key, scope, name, r.sealed))
    }
    return out
  }

  // lastUsed is bookkeeping, not a change of the secret: it keeps the version, which counts value changes. It is
  // advisory metadata, so an arm does not wait for a durable rewrite of the whole store for it: the mark is made
  // in memory at once (listings show it) and reaches disk with the store's next write, or by a write of its own once
  // no mark has come for LAST_USED_FLUSH_MS (at most LAST_USED_MAX_WINDOWS of them after the first), or at close.
  // A crash can lose the marks of the last minute at most, nothing else.
  async markUsed (entries: Array<{ scope: Scope, name: string }>, at: string): Promise<void> {
    const wanted = new Set(entries.map(e => entryKey(e.scope, e.name)))
    const data = this.#db.data
    if (this.#closed) return
    // The committed data already carries every earlier mark (withUsed after each write), so only the records marked
    // now are replaced: one pass, one key a record, instead of three passes over the whole store on the arm's path.
    let secrets: SecretRecord[] | null = null
    const marked: Array<DistributiveOmit<StoreChange, 'revision'>> = []
    for (let i = 0; i < data.secrets.length; i++) {
      const s = data.secrets[i]!
      const k = entryKey(s.scope, s.name)
      if (!wanted.has(k)) continue
      this.#used.set(k, at)
      secrets ??= data.secrets.slice()
      secrets[i] = { ...s, lastUsed: at }
      marked.push({ kind: 'secret', op: 'used', scope: s.scope, name: s.name, version: s.version })
    }
    if (secrets === null) return
    this.#db.data = { ...data, secrets }
    this.#emit(marked)
    // Written once arming goes quiet (each mark pushes the write back, up to LAST_USED_MAX_WINDOWS windows): a burst
    // of arms does not share the disk and the event loop with a rewrite of the whole store (issue 18: these writes
    // made the arm's p99 in bench/ 'runs').
    const { timers, flushMs } = this.#usedOpts
    const now = timers.now()
    this.#usedSince ??= now
    if (this.#usedTimer !== null) timers.clearTimeout(this.#usedTimer)
    const latest = this.#usedSince + flushMs * LAST_USED_MAX_WINDOWS
    this.#usedTimer = timers.setTimeout(() => { this.#usedTimer = null; void this.#flushUsed() }, Math.max(0, Math.min(flushMs, latest - now)))
    this.#usedTimer.unref()
  }

  /** Write pending lastUsed marks; a failure (full disk) keeps them for the next write or a later try. */
  async #flushUsed (): Promise<void> {
    try {
      // Already visible (markUsed raised the revision): this write only makes it durable, no change of its own.
      await this.#mutate(data => ({ next: this.#used.size > 0 ? { ...data } : data, result: undefined, changes: [] }))
    } catch (err) {
      this.#usedOpts.logger.warn({ err, pending: this.#used.size }, 'lastUsed not written; kept for a later write')
      if (!this.#closed && this.#usedTimer === null) {
        this.#usedTimer = this.#usedOpts.timers.setTimeout(() => { this.#usedTimer = null; void this.#flushUsed() }, this.#usedOpts.flushMs)
        this.#usedTimer.unref()
      }
    }
  }

  listWorkspaces (): Workspace[] {
    return this.#db.data.workspaces.map(copyWorkspace).sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  }

  getWorkspace (name: string): Workspace | undefined {
    const w = this.#findWs(name)
    return w === undefined ? undefined : copyWorkspace(w)
  }

  async createWorkspace (name: string, by: string, opts?: { owner?: string | null }): Promise<Workspace> {
    if (typeof name !== 'string' || !/^[^\0\s/]{1,256}$/.test(name)) throw nfsError('NFS_ERR_BAD_REQUEST', ['malformed workspace name'])
    const owner = opts?.owner ?? null
    if (owner !== null && (owner === '' || owner.includes('\0'))) throw nfsError('NFS_ERR_BAD_REQUEST', ['malformed member name'])
    return await this.#mutate(data => {
      if (data.workspaces.some(w => w.name === name)) throw nfsError('NFS_ERR_WORKSPACE_EXISTS', [name])
      const members: Workspace['members'] = owner === null ? {} : { [owner]: 'owner' }
      const ws: Workspace = { name, members, groups: {}, createdAt: this.#now().toISOString(), createdBy: by, version: 1 }
      return { next: casWorkspace(data, null, ws), result: copyWorkspace(ws), changes: [{ kind: 'workspace', op: 'put', name, version: 1 }] }
    })
  }

  async deleteWorkspace (name: string, opts?: WriteOptions): Promise<void> {
    await this.#mutate(data => {
      const cur = data.workspaces.find(w => w.name === name)
      if (cur === undefined && opts?.ifVersion == null) throw nfsError('NFS_ERR_WORKSPACE_NOT_FOUND', [name])
      expectVersion(opts, cur, `workspace ${name}`)
      const next = casWorkspace(data, cur!, null)
      // The workspace's secrets go in the same write: a crash cannot leave secrets of a workspace that is gone.
      const scope = `workspace:${name}`
      const gone = next.secrets.filter(s => s.scope === scope)
      return {
        next: { ...next, secrets: next.secrets.filter(s => s.scope !== scope) },
        result: undefined,
        changes: [
          ...gone.map(s => ({ kind: 'secret' as const, op: 'delete' as const, scope: s.scope, name: s.name, version: s.version })),
          { kind: 'workspace', op: 'delete', name, version: cur!.version }
        ]
      }
    })
  }

  async #setRole (wsName: string, field: 'members' | 'groups', who: string, role: Role | null, opts?: WriteOptions): Promise<Workspace> {
    if (typeof who !== 'string' || who === '' || who.includes('\0')) throw nfsError('NFS_ERR_BAD_REQUEST', ['malformed member name'])
    return await this.#mutate(data => {
      const cur = data.workspaces.find(w => w.name === wsName)
      if (cur === undefined) throw nfsError('NFS_ERR_WORKSPACE_NOT_FOUND', [wsName])
      expectVersion(opts, cur, `workspace ${wsName}`)
      const map = { ...cur[field] }
      if (role === null) {
        if (!Object.hasOwn(map, who)) throw nfsError('NFS_ERR_MEMBER_NOT_FOUND', [who, wsName])
        delete map[who]
      } else {
        map[who] = role
      }
      const ws: Workspace = { ...cur, [field]: map, version: cur.version + 1 }
      return { next: casWorkspace(data, cur, ws), result: copyWorkspace(ws), changes: [{ kind: 'workspace', op: 'put', name: wsName, version: ws.version }] }
    })
  }

  async setMember (ws: string, user: string, role: Role | null, opts?: WriteOptions): Promise<Workspace> {
    return await this.#setRole(ws, 'members', user, role, opts)
  }

  async setGroup (ws: string, group: string, role: Role | null, opts?: WriteOptions): Promise<Workspace> {
    return await this.#setRole(ws, 'groups', group, role, opts)
  }

  counts (): { secrets: number, workspaces: number } {
    return { secrets: this.#db.data.secrets.length, workspaces: this.#db.data.workspaces.length }
  }

  /**
   * Resolves once no write is running or queued, a lastUsed write its timer started included: what a test awaits
   * after moving the timers, before it looks at the file (a write on the thread pool outlasts a turn of the loop).
   */
  async idle (): Promise<void> {
    for (let tail = this.#chain; ; tail = this.#chain) {
      await tail
      if (tail === this.#chain) return
    }
  }

  async close (): Promise<void> {
    if (this.#closed) return
    if (this.#usedTimer !== null) this.#usedOpts.timers.clearTimeout(this.#usedTimer)
    this.#usedTimer = null
    await this.#flushUsed()
    await this.#chain
    this.#closed = true
    this.#listeners.clear()
    await this.#adapter.flush()
  }
}

/** The file store, with what tests of its own timing need beyond the interface. */
export type FileSecretsStore = SecretsStore & { idle: () => Promise<void> }

/**
 * Open (or create) the store at `path`. Every sealed value is decrypted once to prove the key and the file
 * before anything is served, unless the file's seal proves it is what a holder of the key wrote (store-seal.ts);
 * on any problem the file is left byte for byte as it was.
 */
export async function openSecretsStore (opts: OpenSecretsStoreOptions): Promise<FileSecretsStore> {
  const { store, verified } = await openSecretsStoreAside(opts)
  // A store that fails is dropped unclosed: it has no timer yet, and closing could write.
  await verified
  return store
}

/**
 * openSecretsStore, except that the values of a big store are verified in a worker thread (verify-aside.ts) while
 * the caller goes on: `verified` settles with the outcome, and until it resolves nothing may be served or written
 * (the daemon awaits it before it acts on runs). A malformed file or a wrong key id still rejects at once.
 */
export async function openSecretsStoreAside (opts: OpenSecretsStoreOptions): Promise<{ store: FileSecretsStore, verified: Promise<void> }> {
  // Every write is sealed (store-seal.ts), so that the next start can skip the values' decryption.
  const adapter = new AtomicJsonFile<StoreData>(opts.path, { mode: 0o600, serialize: (data: StoreData) => sealedStoreText(data, opts.key) })
  const id = keyId(opts.key)
  const db = new Low<StoreData>(adapter, emptyStore(id))
  const removed = await sweepTempFiles(opts.path)
  if (removed.length > 0) opts.logger.warn({ file: opts.path, removed }, 'removed temp files left by an interrupted write')
  let raw: { value: unknown, text: string } | null = null
  let sealed = false
  let early: PrestartedVerifier | null = null
  let verified = Promise.resolve()
  try {
    const bytes = await readFileBytes(opts.path)
    if (bytes !== null) {
      sealed = sealMatches(bytes, opts.key)
      // A big store without a matching seal has its values verified in a worker, started now so that the thread's
      // own start overlaps the parse and the checks below.
      if (!sealed && bytes.length >= PRESTART_MIN_BYTES) early = prestartVerifier()
      const text = bytes.toString('utf8')
      raw = { value: parseJsonText<unknown>(text, opts.path), text }
      db.data = validateStore(raw.value, opts.path)
      // The seal is the file's, not the store's: never kept in memory (the serializer writes a fresh one).
      delete (db.data as Partial<Record<'seal', unknown>>).seal
    }
  } catch (err) {
    early?.cancel()
    throw err
  }
  if (raw === null) {
    // Written at once so the file records which key the store belongs to from its first start.
    await adapter.write(db.data)
  } else if (sealed) {
    // Written by a holder of the key, which writes only values it sealed or verified: the key id is the one check
    // left (a wrong key cannot match the seal, but is named as NFS_ERR_KEY as before). Each value's own AEAD check
    // still runs whenever it is decrypted (readValues).
    verifyKeyId(db.data, opts.key, opts.path)
  } else {
    verified = verifyAside(db.data, raw.text, opts.key, opts.path, early)
    // Awaited by the caller; handled here so that a rejection before then is not an unhandled one.
    verified.catch(() => {})
  }
  opts.logger.info({ file: opts.path, keyId: id, secrets: db.data.secrets.length, workspaces: db.data.workspaces.length, sealed }, 'secrets store opened')
  const store = new LowSecretsStore(db, adapter, opts.key, opts.now ?? (() => new Date()), { flushMs: opts.lastUsedFlushMs ?? LAST_USED_FLUSH_MS, logger: opts.logger, timers: opts.timers ?? realTimers })
  return { store, verified }
}
