// The file store's SecretsStore (secrets-store.ts opens it): store.json on lowdb 7 with an atomic, durable adapter.
// Values are sealed one by one (crypto.ts) and decrypted only in readValues, when a run needs them; memory holds
// ciphertext like the file does.
//
// Mutations run one at a time. Each builds the next state from the committed one without touching it, writes
// that durably, and only then makes it the committed state: a failed write leaves memory and disk as they were.
// Every record has a version; a caller may name the version it read (If-Match) and the write then fails with
// NFS_ERR_CONFLICT if the record moved on, as a transaction comparing etcd mod revisions would. Every visible
// change raises the store's revision and is told to onChange listeners, which is what a shared backend's watch feeds.
import type { Low } from 'lowdb'
import { nfsError } from '../errors.js'
import type { SecretValue } from '../secret-value.js'
import type { Role, Scope, SecretMeta, Workspace } from '../types.js'
import type { AtomicJsonFile } from './atomic-file.js'
import { open, seal } from './crypto.js'
import { PendingMarks, type UsedOptions } from './last-used-marks.js'
import { SecretPositions } from './secret-positions.js'
import type { SecretsStore, StoreChange, WriteOptions } from './secrets-store-interface.js'
import { casSecret, casWorkspace, checkEntry, copyWorkspace, entryKey, guardMemberName, guardWorkspaceName, toMeta, withRole } from './store-format.js'
import type { SecretRecord, StoreData } from './store-format.js'

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

export class LowSecretsStore implements SecretsStore {
  readonly #db: Low<StoreData>
  readonly #adapter: AtomicJsonFile<StoreData>
  readonly #key: Buffer
  readonly #now: () => Date
  #chain: Promise<unknown> = Promise.resolve()
  #closed = false
  #revision = 0
  readonly #listeners = new Set<(change: StoreChange) => void>()

  // where each secret sits in the committed array (secret-positions.ts)
  readonly #positions = new SecretPositions()

  // lastUsed marks not yet on disk (markUsed); their own write takes them along with a copy of the data.
  readonly #used: PendingMarks

  constructor (db: Low<StoreData>, adapter: AtomicJsonFile<StoreData>, key: Buffer, now: () => Date, usedOpts: UsedOptions) {
    // Already visible (markUsed raised the revision): this write only makes it durable, no change of its own.
    const write = async (): Promise<void> => { await this.#mutate(data => ({ next: this.#used.size > 0 ? { ...data } : data, result: undefined, changes: [] })) }
    this.#used = new PendingMarks(usedOpts, write, () => this.#closed)
    this.#db = db
    this.#adapter = adapter
    this.#key = key
    this.#now = now
  }

  #find (scope: Scope, name: string): SecretRecord | undefined {
    const secrets = this.#db.data.secrets
    const i = this.#positions.indexOf(secrets, scope, name)
    return i === undefined ? undefined : secrets[i]
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
        const used = this.#used.snapshot()
        await this.#adapter.write(next)
        this.#used.written(used)
        this.#db.data = this.#used.overlay(next)
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

  // In memory at once, on disk with the next write or by a write of their own (last-used-marks.ts).
  async markUsed (entries: Array<{ scope: Scope, name: string }>, at: string): Promise<void> {
    const data = this.#db.data
    if (this.#closed) return
    // The committed data already carries every earlier mark (withUsed after each write), so only the records marked
    // now are replaced, found through #positions, and marked in the store's order, as the scan did.
    const where = [...new Set(entries.map(e => this.#positions.indexOf(data.secrets, e.scope, e.name)))]
      .filter((i): i is number => i !== undefined)
      .sort((a, b) => a - b)
    if (where.length === 0) return
    const secrets = data.secrets.slice()
    const marked: Array<DistributiveOmit<StoreChange, 'revision'>> = []
    for (const i of where) {
      const s = data.secrets[i]!
      this.#used.set(entryKey(s.scope, s.name), at)
      secrets[i] = { ...s, lastUsed: at }
      marked.push({ kind: 'secret', op: 'used', scope: s.scope, name: s.name, version: s.version })
    }
    this.#positions.carry(data.secrets, secrets)
    this.#db.data = { ...data, secrets }
    this.#emit(marked)
    this.#used.schedule()
  }

  listWorkspaces (): Workspace[] {
    return this.#db.data.workspaces.map(copyWorkspace).sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  }

  getWorkspace (name: string): Workspace | undefined {
    const w = this.#findWs(name)
    return w === undefined ? undefined : copyWorkspace(w)
  }

  async createWorkspace (name: string, by: string, opts?: { owner?: string | null }): Promise<Workspace> {
    guardWorkspaceName(name)
    const owner = opts?.owner ?? null
    if (owner !== null) guardMemberName(owner)
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
    guardMemberName(who)
    return await this.#mutate(data => {
      const cur = data.workspaces.find(w => w.name === wsName)
      if (cur === undefined) throw nfsError('NFS_ERR_WORKSPACE_NOT_FOUND', [wsName])
      expectVersion(opts, cur, `workspace ${wsName}`)
      const ws = withRole(cur, field, who, role)
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
    this.#used.stop()
    await this.#used.flush()
    await this.#chain
    this.#closed = true
    this.#listeners.clear()
    await this.#adapter.flush()
  }
}

/** The file store, with what tests of its own timing need beyond the interface. */
export type FileSecretsStore = SecretsStore & { idle: () => Promise<void> }
