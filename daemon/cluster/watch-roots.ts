// Watch roots in cluster mode (CLUSTER.md "Keys"): a root added through the API is shared, under watches/<hash(root)>
// (its options and who added it, no lease), so `watch list` on every node shows it; and one node polls it, the one
// whose name is in wown/<hash(root)> on that node's lease. The others neither walk nor poll it. When the poller dies
// its lease expires, etcd deletes its wown/ keys, and another node that can see the root's path claims it with a
// create-only transaction, after the same 0-500 ms jitter as adoption. A fenced node (membership.ts) stops polling
// until it holds its lease again: the others may be claiming its roots meanwhile. A root in a node's own config that
// is also under watches/ is shared like the others; a root only in the config stays that node's.
// A node judges a root with the watch service's check (setCheck: the checks of `watch add`, made again on this node's
// view of the path) before it claims it and at each look while it polls it: a root that fails as unsafe (a symlink
// swapped in) is given up at once, one not seen (a mount lost) after releaseAfterMs, so a node that sees it takes it
// (watch-root-looks.ts). The keys and what the feed's changes say: watch-root-keys.ts.
import type { Namespace } from 'etcd3'
import { nfsError } from '../errors.js'
import type { Logger } from '../logger.js'
import { clusterError } from '../store/etcd/etcd-client.js'
import { Replica } from '../store/etcd/replica.js'
import type { RootChange, RootCheck, StoredWatch, WatchRoots } from '../store/watch-roots.js'
import type { Membership } from './membership.js'
import { parseWatch, rootChange, rootHash, WATCHES, WOWN } from './watch-root-keys.js'
import { PolledRootLooks } from './watch-root-looks.js'

/** how often the node looks at its fencing and at roots nobody polls (a path mounted later, a failed claim) */
const TICK_MS = 1000

export interface EtcdWatchRootsOptions {
  ns: Namespace
  membership: Pick<Membership, 'node' | 'leaseId' | 'unfenced'>
  /** the lease TTL: a dead poller may have stopped that long before etcd deleted its keys */
  ttlSeconds: number
  logger: Pick<Logger, 'info' | 'warn'>
  /** 0-500 ms by default, as adoption's */
  jitterMs?: () => number
  now?: () => number
  tickMs?: number
  /** how long this node polls a root it cannot see (a mount lost) before it lets another node take it; the TTL by default */
  releaseAfterMs?: number
}

export class EtcdWatchRoots implements WatchRoots {
  readonly node: string
  readonly #opts: EtcdWatchRootsOptions
  readonly #replica: Replica
  readonly #listeners = new Set<() => void>()
  readonly #rootListeners = new Set<(c: RootChange) => void>()
  readonly #now: () => number
  /** when this node saw a root lose its poller (hash -> ms): the next poller's first walk counts starts from before */
  readonly #orphanedAt = new Map<string, number>()
  #timer: NodeJS.Timeout | null = null
  /** the roots this node polled at the last look, to tell a change (fenced, unfenced) */
  #lastMine = ''
  #claiming = false
  #claimAgain = false
  /** a failed claim was logged: the next failures are not, until one succeeds (etcd out of reach for a while) */
  #warned = false
  /** none until setCheck: nothing is claimed meanwhile */
  #check: RootCheck | null = null
  readonly #looker: PolledRootLooks
  /** roots this node refused to claim, and why (hash -> reason): logged once a reason */
  readonly #refused = new Map<string, string>()
  #rechecking = false
  #closed = false
  #looks = 0
  #claimPasses = 0

  private constructor (opts: EtcdWatchRootsOptions, replica: Replica) {
    this.#opts = opts
    this.node = opts.membership.node
    this.#replica = replica
    this.#now = opts.now ?? Date.now
    this.#looker = new PolledRootLooks({
      ns: opts.ns,
      replica,
      node: this.node,
      now: this.#now,
      releaseAfterMs: opts.releaseAfterMs ?? opts.ttlSeconds * 1000,
      logger: opts.logger,
      released: (hash, reason) => { this.#refused.set(hash, reason) }
    })
  }

  /** Looks at the roots polled here, and claim passes, done so far: a test waits for one instead of sleeping. */
  get looks (): number { return this.#looks }
  get claimPasses (): number { return this.#claimPasses }

  setCheck (check: RootCheck): void {
    this.#check = check
    this.#claim()
  }

  static async open (opts: EtcdWatchRootsOptions): Promise<EtcdWatchRoots> {
    const replica = new Replica(opts.ns, [WATCHES, WOWN], opts.membership.node)
    await replica.start()
    const roots = new EtcdWatchRoots(opts, replica)
    replica.onChange(c => {
      roots.#announce(c.key, c.op, c.entry?.value.toString() ?? null, c.previous?.value.toString() ?? null, c.revision)
      roots.#changed(c.key, c.op, c.entry?.value.toString() ?? null, c.previous?.value.toString() ?? null)
    })
    roots.#lastMine = roots.#mineKey()
    roots.#timer = setInterval(() => { roots.#tick() }, opts.tickMs ?? TICK_MS)
    roots.#timer.unref()
    roots.#claim()
    return roots
  }

  #changed (key: string, op: 'put' | 'delete', value: string | null, previous: string | null): void {
    if (key.startsWith(WOWN)) {
      const hash = key.slice(WOWN.length)
      if (op === 'delete' && previous !== null) {
        this.#orphanedAt.set(hash, this.#now())
        this.#claim()
      }
      // Another node took it: a later takeover counts from its own orphaning, not from this one.
      if (op === 'put' && value !== this.node) this.#orphanedAt.delete(hash)
    }
    if (key.startsWith(WATCHES) && op === 'put') this.#claim()
    if (key.startsWith(WATCHES) && op === 'delete') this.#orphanedAt.delete(key.slice(WATCHES.length))
    this.#lastMine = this.#mineKey()
    this.#emit()
  }

  /** A root added or removed anywhere (this node too): told once, from the feed, for every node's events. */
  #announce (key: string, op: 'put' | 'delete', value: string | null, previous: string | null, revision: number): void {
    const c = rootChange(key, op, value, previous, revision)
    if (c === null) return
    for (const l of this.#rootListeners) {
      try { l(c) } catch { /* a listener's bug must not stop the others */ }
    }
  }

  #tick (): void {
    const now = this.#mineKey()
    if (now !== this.#lastMine) {
      this.#lastMine = now
      this.#emit()
    }
    // Roots nobody polls (a path mounted later, a claim that failed): one pass a look, not back to back.
    if (!this.#claiming && this.#unpolled().length > 0) this.#claim()
    if (!this.#rechecking) {
      this.#rechecking = true
      const check = this.#check
      const look = check === null || !this.#opts.membership.unfenced ? Promise.resolve() : this.#looker.look(this.#stored(), check, () => this.#closed)
      look.catch((err: unknown) => { this.#opts.logger.warn({ err }, 'checking the watch roots polled here failed; the next look tries again') })
        .finally(() => { this.#rechecking = false; this.#looks++ })
    }
  }

  #emit (): void {
    for (const l of this.#listeners) {
      try { l() } catch { /* a listener's bug must not stop the others */ }
    }
  }

  #mineKey (): string {
    return this.#opts.membership.unfenced ? this.#replica.list(WOWN).filter(([, e]) => e.value.toString() === this.node).map(([k]) => k).join() : ''
  }

  #stored (): Array<{ hash: string, w: StoredWatch, mod: number }> {
    const out: Array<{ hash: string, w: StoredWatch, mod: number }> = []
    for (const [k, e] of this.#replica.list(WATCHES)) {
      const w = parseWatch(e.value.toString())
      if (w !== null) out.push({ hash: k.slice(WATCHES.length), w, mod: e.mod })
    }
    return out
  }

  #unpolled (): Array<{ hash: string, w: StoredWatch, mod: number }> {
    return this.#stored().filter(s => this.#replica.get(WOWN + s.hash) === undefined)
  }

  /** Claim the shared roots nobody polls that this node can see; one pass at a time, another after it if asked. */
  #claim (): void {
    if (this.#closed) return
    if (this.#claiming) { this.#claimAgain = true; return }
    this.#claiming = true
    this.#claimPass().then(() => { this.#warned = false }, (err: unknown) => {
      if (!this.#warned) this.#opts.logger.warn({ err }, 'claiming watch roots failed; the next look tries again')
      this.#warned = true
    }).finally(() => {
      this.#claiming = false
      this.#claimPasses++
      if (this.#claimAgain) { this.#claimAgain = false; this.#claim() }
    })
  }

  async #claimPass (): Promise<void> {
    const check = this.#check
    if (check === null || !this.#opts.membership.unfenced || this.#unpolled().length === 0) return
    const jitter = this.#opts.jitterMs?.() ?? Math.random() * 500
    await new Promise(resolve => setTimeout(resolve, jitter))
    for (const { hash, w, mod } of this.#unpolled()) {
      if (this.#closed || !this.#opts.membership.unfenced) return
      const why = await check(w)
      if (why !== null) {
        // Said once a reason: the claim loop asks again every look (a path mounted later, a symlink put back).
        if (this.#refused.get(hash) !== why.reason) {
          this.#refused.set(hash, why.reason)
          ;(why.unsafe ? this.#opts.logger.warn : this.#opts.logger.info).call(this.#opts.logger, { root: w.root, reason: why.reason }, 'not claiming a shared watch root')
        }
        continue
      }
      this.#refused.delete(hash)
      // Only the root as read (its mod revision: not one removed meanwhile), and only while nobody polls it.
      const res = await this.#opts.ns.if(WOWN + hash, 'Create', '==', 0).and(WATCHES + hash, 'Mod', '==', mod)
        .then(this.#ownOp(hash)).commit()
      if (!res.succeeded) continue
      await this.#replica.waitFor(Number(res.header.revision))
      this.#opts.logger.info({ root: w.root }, 'polling a shared watch root')
    }
  }

  #ownOp (hash: string): ReturnType<Namespace['put']> {
    return this.#opts.ns.put(WOWN + hash).value(this.node).lease(this.#opts.membership.leaseId)
  }

  all (): readonly StoredWatch[] {
    return this.#stored().map(s => s.w)
  }

  /**
   * Add a shared root; this node polls it from the same transaction (it has just resolved the path, so it sees it).
   * The per-user limit counts the roots of the whole cluster after a barrier; two adds of one user at the very same
   * moment on two nodes may each pass it once (liveRunsPerUser cannot: an arm compares its user's uarms/ key).
   */
  async add (w: Omit<StoredWatch, 'version'>, maxPerUid?: number): Promise<StoredWatch> {
    const hash = rootHash(w.root)
    const rec: StoredWatch = { ...w, version: 1, node: this.node }
    try {
      await this.#replica.barrier()
      if (maxPerUid !== undefined && this.all().filter(x => x.uid === w.uid).length >= maxPerUid) {
        throw nfsError('NFS_ERR_LIMIT', [`limits.watchRootsPerUser (${maxPerUid}): ${w.user} holds ${maxPerUid} watch roots`])
      }
      const ops = [this.#opts.ns.put(WATCHES + hash).value(JSON.stringify(rec))]
      if (this.#opts.membership.unfenced) ops.push(this.#ownOp(hash))
      const res = await this.#opts.ns.if(WATCHES + hash, 'Create', '==', 0).then(...ops).commit()
      if (!res.succeeded) throw nfsError('NFS_ERR_WATCH_EXISTS', [w.root])
      await this.#replica.waitFor(Number(res.header.revision))
      return rec
    } catch (err) {
      throw clusterError(err, 'adding a watch root')
    }
  }

  /** Remove a shared root and its poller's key in one transaction: the poller sees both go and stops. */
  async remove (root: string): Promise<boolean> {
    const hash = rootHash(root)
    try {
      const res = await this.#opts.ns.if(WATCHES + hash, 'Create', '>', 0)
        .then(this.#opts.ns.delete().key(WATCHES + hash), this.#opts.ns.delete().key(WOWN + hash)).commit()
      if (res.succeeded) await this.#replica.waitFor(Number(res.header.revision))
      return res.succeeded
    } catch (err) {
      throw clusterError(err, 'removing a watch root')
    }
  }

  #shared (root: string): boolean {
    return this.#replica.get(WATCHES + rootHash(root)) !== undefined
  }

  mine (root: string): boolean {
    if (!this.#shared(root)) return true
    return this.#opts.membership.unfenced && this.pollerOf(root) === this.node
  }

  pollerOf (root: string): string | null {
    if (!this.#shared(root)) return this.node
    return this.#replica.get(WOWN + rootHash(root))?.value.toString() ?? null
  }

  seedsSince (root: string): number | undefined {
    const at = this.#orphanedAt.get(rootHash(root))
    // The dead poller kept its key up to a TTL after its last keepalive, and fenced itself 2 s before that.
    return at !== undefined ? at - this.#opts.ttlSeconds * 1000 - 2000 : undefined
  }

  /** The roots added and removed on every node, this one's included, in revision order (EventBus.follow). */
  onRoots (listener: (c: RootChange) => void): () => void {
    this.#rootListeners.add(listener)
    return () => { this.#rootListeners.delete(listener) }
  }

  onChange (listener: () => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  /** The wown/ keys stay on the lease: a restart within the TTL polls its roots again, nobody takes them over. */
  async close (): Promise<void> {
    this.#closed = true
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#listeners.clear()
    this.#rootListeners.clear()
    await this.#replica.close()
  }
}
