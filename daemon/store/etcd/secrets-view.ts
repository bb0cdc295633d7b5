// The etcd store's read side: its records parsed from the mirror and kept in step with it, so that a read never
// parses JSON, and the store's change feed (secret and workspace events, told once each in revision order). A
// secret's delete says who deleted it from its tombstone (tombstones.ts); a use mark (lastUsed only) is told as 'used'.
import type { Scope, SecretMeta, Workspace } from '../../types.js'
import type { StoreChange } from '../secrets-store-interface.js'
import { copyWorkspace } from '../store-format.js'
import type { Replica, ReplicaChange } from './replica.js'
import { GONE, META, WS } from './secret-keys.js'
import type { Tombstones } from './tombstones.js'

const byScopeThenName = (a: SecretMeta, b: SecretMeta): number =>
  a.scope < b.scope ? -1 : a.scope > b.scope ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0

export class SecretsView {
  /** secrets' metadata by smeta/ key, as the mirror holds them now (the writers read them; never hand one out) */
  readonly meta = new Map<string, SecretMeta>()
  /** workspaces by ws/ key, likewise */
  readonly ws = new Map<string, Workspace>()
  readonly #tombs: Tombstones
  readonly #listeners = new Set<(c: StoreChange) => void>()

  constructor (replica: Replica, tombs: Tombstones) {
    this.#tombs = tombs
    for (const [k, e] of replica.list(META)) this.meta.set(k, JSON.parse(e.value.toString()) as SecretMeta)
    for (const [k, e] of replica.list(WS)) this.ws.set(k, JSON.parse(e.value.toString()) as Workspace)
    replica.onChange(c => { this.#apply(c) })
  }

  #apply (c: ReplicaChange): void {
    let change: StoreChange | null = null
    if (c.key.startsWith(GONE)) {
      this.#tombs.apply(c)
    } else if (c.key.startsWith(META)) {
      const before = this.meta.get(c.key)
      if (c.entry === null) {
        this.meta.delete(c.key)
        // A tombstone newer than the secret's last write is this delete's; none: a workspace's deletion took it.
        const by = this.#tombs.use(c.key.slice(META.length), c.previous?.mod ?? 0)
        if (before !== undefined) change = { revision: c.revision, kind: 'secret', op: 'delete', scope: before.scope, name: before.name, version: before.version, ...by }
      } else {
        const m = JSON.parse(c.entry.value.toString()) as SecretMeta
        this.meta.set(c.key, m)
        const used = before !== undefined && before.version === m.version
        change = used
          ? { revision: c.revision, kind: 'secret', op: 'used', scope: m.scope, name: m.name, version: m.version }
          : { revision: c.revision, kind: 'secret', op: 'put', scope: m.scope, name: m.name, version: m.version, by: m.updatedBy }
      }
    } else if (c.key.startsWith(WS)) {
      const before = this.ws.get(c.key)
      if (c.entry === null) {
        this.ws.delete(c.key)
        if (before !== undefined) change = { revision: c.revision, kind: 'workspace', op: 'delete', name: before.name, version: before.version }
      } else {
        const w = JSON.parse(c.entry.value.toString()) as Workspace
        this.ws.set(c.key, w)
        change = { revision: c.revision, kind: 'workspace', op: 'put', name: w.name, version: w.version }
      }
    }
    if (change === null) return
    for (const l of this.#listeners) {
      try { l(change) } catch { /* not the writer's problem */ }
    }
  }

  onChange (listener: (c: StoreChange) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /** No listener is told anything more (the store is closing). */
  close (): void { this.#listeners.clear() }

  listSecrets (scopes: Scope[]): SecretMeta[] {
    const wanted = new Set<string>(scopes)
    return [...this.meta.values()].filter(m => wanted.has(m.scope)).map(m => ({ ...m })).sort(byScopeThenName)
  }

  getSecret (scope: Scope, name: string): SecretMeta | undefined {
    const m = this.meta.get(`${META}${scope}/${name}`)
    return m === undefined ? undefined : { ...m }
  }

  listWorkspaces (): Workspace[] {
    return [...this.ws.values()].map(copyWorkspace).sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  }

  getWorkspace (name: string): Workspace | undefined {
    const w = this.ws.get(WS + name)
    return w === undefined ? undefined : copyWorkspace(w)
  }

  counts (): { secrets: number, workspaces: number } {
    return { secrets: this.meta.size, workspaces: this.ws.size }
  }
}
