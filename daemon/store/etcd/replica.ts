// A local mirror of the keys under a few prefixes, fed by one etcd watch (CLUSTER.md "Reads"). Reads are
// synchronous and reflect `revision`: the highest etcd revision whose changes under the prefixes have all been
// applied. A read that must not be stale calls barrier(): it writes this node's sync key and waits until the watch
// has delivered that write, so every change acknowledged anywhere before the barrier is in the mirror (the way
// ZooKeeper's sync works). Listeners see each change once, in revision order, deduplicated by (key, mod revision).
import { Range, type Namespace, type Watcher } from 'etcd3'
import { nfsError } from '../../errors.js'
import { clusterError } from './etcd-client.js'

/** `lease`: the lease id the key is on, '0' for none (as etcd gives it) */
export interface Entry { value: Buffer, mod: number, create: number, version: number, lease: string }
export interface ReplicaChange { key: string, op: 'put' | 'delete', entry: Entry | null, previous: Entry | null, revision: number }

interface RawKv { key: Buffer, value: Buffer, mod_revision: string, create_revision: string, version: string, lease: string }

/**
 * Keys per page when the mirror loads a prefix, unless the owner says otherwise for a prefix of large records: a page
 * must stay under the client's receive limit (4 MiB). A failed page cannot be read again smaller: the client takes
 * RESOURCE_EXHAUSTED for a member's fault, tries every member and opens their circuit breakers.
 */
export const PAGE_KEYS = 200

const SYNC = 'sync/'

/**
 * How long waitFor (and so barrier, and every write that waits for its own revision) waits for the watch to deliver a
 * revision before it answers NFS_ERR_CLUSTER_UNAVAILABLE. The watch is the only way a revision arrives, and the etcd3
 * client resumes it only on an error it sees: a member that lost its peers keeps a watch open that delivers nothing, and
 * a cut connection is seen only by the gRPC keepalive. Longer than a broken watch takes to come back: about 6 s for the
 * keepalive to notice a dead connection (etcd-client.ts), then the watch's and gRPC's reconnect delays (capped at 1 s
 * each) and the catch-up of what changed meanwhile. Shorter than a caller would wait for an answer it can act on.
 */
export const WAIT_MS = 10_000

/**
 * How long close() waits for etcd to answer the watch's cancel. The client (lib/watch.js WatchManager.detach) waits
 * for that answer with no bound of its own, and on a stalled stream it never comes: a daemon's shutdown must not hang
 * on it. The client is closed right after, which drops the stream anyway.
 */
export const CANCEL_WAIT_MS = 2000

export class Replica {
  readonly #ns: Namespace
  readonly #prefixes: string[]
  readonly #node: string
  readonly #entries = new Map<string, Entry>()
  readonly #listeners = new Set<(c: ReplicaChange) => void>()
  readonly #waiters: Array<{ revision: number, resolve: () => void, reject: (err: Error) => void }> = []
  #revision = 0
  #watcher: Watcher | null = null
  #closed = false

  readonly #pages: Record<string, number>
  readonly #waitMs: number
  readonly #cancelWaitMs: number

  /**
   * `pages`: keys per page for a prefix of large records (PAGE_KEYS for the others); `waitMs`: waitFor's bound (WAIT_MS);
   * `cancelWaitMs`: close()'s bound on the watch's cancel (CANCEL_WAIT_MS)
   */
  constructor (ns: Namespace, prefixes: string[], node: string, opts: { pages?: Record<string, number>, waitMs?: number, cancelWaitMs?: number } = {}) {
    this.#ns = ns
    this.#prefixes = prefixes
    this.#node = node
    this.#pages = opts.pages ?? {}
    this.#waitMs = opts.waitMs ?? WAIT_MS
    this.#cancelWaitMs = opts.cancelWaitMs ?? CANCEL_WAIT_MS
  }

  get revision (): number { return this.#revision }

  get (key: string): Entry | undefined { return this.#entries.get(key) }

  /** every entry whose key starts with `prefix`, in key order */
  list (prefix: string): Array<[string, Entry]> {
    const out: Array<[string, Entry]> = []
    for (const [k, e] of this.#entries) if (k.startsWith(prefix)) out.push([k, e])
    return out.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)
  }

  onChange (listener: (c: ReplicaChange) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /** Load every key under the prefixes at one revision, then follow changes from the next one. */
  async start (): Promise<void> {
    const revision = await this.#load()
    await this.#watch(revision + 1)
  }

  async #load (): Promise<number> {
    let revision = 0
    const fresh = new Map<string, Entry>()
    try {
      // One range for all the prefixes would need a common parent; a range per prefix pinned to the first's
      // revision reads one consistent snapshot.
      for (const prefix of this.#prefixes) {
        revision = await this.#loadPrefix(prefix, revision, fresh)
      }
    } catch (err) {
      throw clusterError(err, 'reading the cluster state')
    }
    // After a compaction the watch could not resume: emit what changed meanwhile as if it had been watched.
    const old = new Map(this.#entries)
    this.#entries.clear()
    for (const [k, e] of fresh) this.#entries.set(k, e)
    for (const [k, e] of fresh) {
      const prev = old.get(k)
      if (prev === undefined || prev.mod !== e.mod) this.#emit({ key: k, op: 'put', entry: e, previous: prev ?? null, revision: e.mod })
    }
    for (const [k, prev] of old) if (!fresh.has(k)) this.#emit({ key: k, op: 'delete', entry: null, previous: prev, revision })
    this.#advance(revision)
    return revision
  }

  /**
   * One prefix, in pages of `#pageOf(prefix)` keys from the last key read: a prefix read in one answer fails for good
   * once it is past the client's receive limit (4 MiB by default: tombstones of older daemons, thousands of runs,
   * sealed values). Each page is read at the revision of the first answer; returns that revision.
   */
  async #loadPrefix (prefix: string, atRevision: number, into: Map<string, Entry>): Promise<number> {
    let revision = atRevision
    const end = Range.prefix(prefix).end
    let start = Buffer.from(prefix)
    for (;;) {
      const range = this.#ns.getAll().inRange(new Range(start, end)).limit(this.#pageOf(prefix))
      if (revision > 0) range.revision(revision)
      const res = await range.exec()
      if (revision === 0) revision = Number(res.header.revision)
      const kvs = res.kvs as unknown as RawKv[]
      for (const kv of kvs) into.set(kv.key.toString(), toEntry(kv))
      if (!res.more || kvs.length === 0) return revision
      // The next key after the last one read: its bytes and a zero byte.
      start = Buffer.concat([kvs[kvs.length - 1]!.key, Buffer.from([0])])
    }
  }

  #pageOf (prefix: string): number { return this.#pages[prefix] ?? PAGE_KEYS }

  async #watch (from: number): Promise<void> {
    const builder = this.#ns.watch().prefix('').startRevision(String(from)).withPreviousKV()
    const watcher = await builder.create()
    this.#watcher = watcher
    // The client resumes a broken watch from the revision after the last response's header (etcd3 lib/watch.js,
    // Watcher.updateRevision, on 'connected' and on 'data'). A header is not a promise that every change up to it
    // was delivered: a re-created watch's first answer carries the member's current revision before its catch-up
    // events, and a catch-up answer carries the current revision with at most 1,000 revisions of events (etcd's
    // syncWatchers). A second break in between resumed past changes never delivered, and the mirror missed them for
    // good (seen: a node's mirror held a run's end but not its revoke after a quorum loss). Both our handlers run
    // after the client's own, so the resume point is always the revision after the last change applied here.
    watcher.on('connected', () => { this.#resumeAfterApplied(watcher) })
    watcher.on('data', (res) => {
      let last = 0
      for (const ev of res.events ?? []) {
        const kv = ev.kv as unknown as RawKv
        const key = kv.key.toString()
        const mod = Number(kv.mod_revision)
        if (mod > last) last = mod
        if (key.startsWith(SYNC)) continue
        if (!this.#prefixes.some(p => key.startsWith(p))) continue
        const prev = this.#entries.get(key) ?? null
        if (ev.type === 'Delete') {
          if (prev === null) continue
          this.#entries.delete(key)
          this.#emit({ key, op: 'delete', entry: null, previous: prev, revision: mod })
        } else {
          if (prev !== null && prev.mod >= mod) continue
          const entry = toEntry(kv)
          this.#entries.set(key, entry)
          this.#emit({ key, op: 'put', entry, previous: prev, revision: mod })
        }
      }
      // With events, the mirror has applied changes up to the last one's revision, and no further (the header may
      // be ahead, above). Without events the answer is a progress notification, which etcd sends only to a watcher
      // that has caught up: its header holds.
      this.#advance(last > 0 ? last : Number(res.header.revision))
      this.#resumeAfterApplied(watcher)
    })
    watcher.on('error', () => {
      // The client emits 'error' on a watcher only when etcd cancels it (its stream errors are retried and come as
      // 'disconnected'), and the watcher is then dropped for good. The usual cause is a start revision compacted away
      // while this node was cut off: etcd says so in compact_revision, with no cancel_reason, so the message is only
      // "Watcher canceled: ". Whatever the cause, read everything again, diff, and watch from there.
      if (this.#closed || this.#watcher !== watcher) return
      // The client has dropped it already: cancelling it again would send etcd a cancel whose answer the client
      // cannot place (it throws on an answer for a watcher it no longer knows).
      this.#watcher = null
      void this.#resync()
    })
  }

  #resumeAfterApplied (watcher: Watcher): void {
    if (this.#revision > 0) watcher.request.start_revision = String(this.#revision + 1)
  }

  /** Load again and watch from there, until it works or the mirror is closed (the cluster may be out of reach). */
  async #resync (): Promise<void> {
    for (let delay = 250; !this.#closed; delay = Math.min(delay * 2, 5000)) {
      try {
        const revision = await this.#load()
        if (this.#closed) return
        await this.#watch(revision + 1)
        if (this.#closed) await this.#cancel()
        return
      } catch {
        await new Promise(resolve => setTimeout(resolve, delay))
      }
    }
  }

  /** Wait until every change acknowledged anywhere so far is in the mirror; the revision reached. */
  async barrier (): Promise<number> {
    let revision: number
    try {
      const res = await this.#ns.put(`${SYNC}${this.#node}`).value(String(Date.now())).exec()
      revision = Number(res.header.revision)
    } catch (err) {
      throw clusterError(err, 'reaching the cluster for a fresh read')
    }
    await this.waitFor(revision)
    return this.#revision
  }

  /**
   * Resolve once the mirror reflects `revision` (an answer of a write this node made, or a barrier's); reject with
   * NFS_ERR_CLUSTER_UNAVAILABLE if it does not within the bound (WAIT_MS), or when the mirror is closed first. After a
   * write, that rejection means the write is in etcd but not yet in this node's view: the callers answer it as they
   * answer a write whose outcome they could not learn.
   */
  async waitFor (revision: number): Promise<void> {
    if (this.#revision >= revision) return
    if (this.#closed) throw this.#behind(revision, 'this node\'s view of the cluster is closed')
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter)
        if (i >= 0) this.#waiters.splice(i, 1)
        reject(this.#behind(revision, `its watch delivered nothing past revision ${this.#revision} within ${this.#waitMs} ms`))
      }, this.#waitMs)
      const waiter = {
        revision,
        resolve: () => { clearTimeout(timer); resolve() },
        reject: (err: Error) => { clearTimeout(timer); reject(err) }
      }
      this.#waiters.push(waiter)
    })
  }

  /** waiters not yet answered (tests: none is left behind) */
  get waiting (): number { return this.#waiters.length }

  #behind (revision: number, why: string): Error {
    return nfsError('NFS_ERR_CLUSTER_UNAVAILABLE', [`waiting for this node's view of the cluster to reach revision ${revision} (${why})`])
  }

  #advance (revision: number): void {
    if (revision <= this.#revision) return
    this.#revision = revision
    for (let i = this.#waiters.length - 1; i >= 0; i--) {
      const w = this.#waiters[i]!
      if (w.revision <= revision) {
        this.#waiters.splice(i, 1)
        w.resolve()
      }
    }
  }

  #emit (c: ReplicaChange): void {
    for (const l of this.#listeners) {
      try { l(c) } catch { /* a listener's bug must not stop the mirror */ }
    }
  }

  async close (): Promise<void> {
    this.#closed = true
    this.#listeners.clear()
    for (const w of this.#waiters.splice(0)) w.reject(this.#behind(w.revision, 'this node\'s view of the cluster was closed'))
    await this.#cancel()
  }

  /** Cancel the watch, waiting for etcd's answer at most CANCEL_WAIT_MS (see there). */
  async #cancel (): Promise<void> {
    const watcher = this.#watcher
    this.#watcher = null
    if (watcher === null) return
    let timer: NodeJS.Timeout | undefined
    const bound = new Promise<void>(resolve => { timer = setTimeout(resolve, this.#cancelWaitMs) })
    await Promise.race([watcher.cancel().catch(() => {}), bound])
    clearTimeout(timer)
  }
}

function toEntry (kv: RawKv): Entry {
  return { value: Buffer.from(kv.value), mod: Number(kv.mod_revision), create: Number(kv.create_revision), version: Number(kv.version), lease: String(kv.lease) }
}
