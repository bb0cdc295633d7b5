// Run ownership on etcd (CLUSTER.md "Ownership", "Takeover"): own/<runId> holds the owner node's name on that node's
// lease, so etcd deletes it when the node dies. Arming puts it in the same transaction as the intent row (claimOps);
// a node owns a run while its key says so and its membership is not fenced. Takeover is one transaction per run:
// create_revision(own/<id>) == 0 AND mod_revision(runs/<id>) == the revision this node read, so that a run already
// ended and revoked by a first adopter is never adopted, and revoked, a second time. Each orphan has a preferred
// adopter (adopter.ts) so that survivors do not all race for every run; a little jitter parts the rest.
import type { Namespace } from 'etcd3'
import type { RunRecord } from '../types.js'
import type { RunOwnership } from '../runs/ownership.js'
import { needsOwner } from '../runs/run-rules.js'
import { clusterError } from '../store/etcd/etcd-client.js'
import { afterLostAnswer, ownWriteRevision, readBack, type Written } from '../store/etcd/own-write.js'
import { Replica } from '../store/etcd/replica.js'
import { inPool, preferredAdopter } from './adopter.js'
import { HostWatch } from './host-watch.js'
import { JOINED, type NodeInfo } from './join.js'
import type { Membership } from './membership.js'

const OWN = 'own/'
const NODES = 'nodes/'
/** how long a node leaves an orphan to its preferred adopter before trying itself */
export const ADOPT_GRACE_MS = 2000
/** the most a node waits before it adopts (a random 0 to this many ms): survivors do not all race at once */
export const ADOPT_JITTER_MS = 500
const ADOPT_IN_FLIGHT = 8

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

export interface EtcdOwnershipOptions {
  ns: Namespace
  membership: Membership
  /** the runs this node's ledger mirror knows, with the mod revision it read each at */
  runs: () => Array<{ run: RunRecord, mod: number }>
  /** one run of that mirror with its mod revision (default: looked up in runs()) */
  entry?: (runId: string) => { run: RunRecord, mod: number } | undefined
  /** 0-500 ms by default (CLUSTER.md) */
  jitterMs?: () => number
  /** cluster.hostDeadAfterSeconds in ms (default 300 s): how long a host has no live node before it counts dead */
  hostDeadAfterMs?: number
  now?: () => number
}

export class EtcdOwnership implements RunOwnership {
  readonly node: string
  readonly #opts: EtcdOwnershipOptions
  readonly #replica: Replica
  readonly #jitter: () => number
  readonly #hosts: HostWatch
  /** the same, by node name: how long each name has had no nodes/ key */
  readonly #names: HostWatch
  #failedAdoptions = 0

  private constructor (opts: EtcdOwnershipOptions, replica: Replica) {
    this.#opts = opts
    this.node = opts.membership.node
    this.#replica = replica
    this.#jitter = opts.jitterMs ?? (() => Math.random() * ADOPT_JITTER_MS)
    this.#hosts = new HostWatch(opts.now)
    this.#names = new HostWatch(opts.now, name => name)
    const update = (): void => {
      const nodes = this.nodes()
      this.#hosts.update(nodes.map(n => n.host))
      this.#names.update(nodes.map(n => n.name))
    }
    update()
    replica.onChange(c => { if (c.key.startsWith(NODES)) update() })
  }

  static async open (opts: EtcdOwnershipOptions): Promise<EtcdOwnership> {
    const replica = new Replica(opts.ns, [OWN, NODES, JOINED], opts.membership.node)
    await replica.start()
    return new EtcdOwnership(opts, replica)
  }

  /** Wait until this node's view of owners reflects every change acknowledged so far. */
  async settle (): Promise<void> {
    await this.#replica.barrier()
  }

  /** The owner of a run by its key (null: none, its node's lease is gone). */
  ownerOf (runId: string): string | null {
    return this.#replica.get(OWN + runId)?.value.toString() ?? null
  }

  owns (run: RunRecord): boolean {
    return this.#opts.membership.unfenced && this.ownerOf(run.runId) === this.node
  }

  /** Has the node name a member key now (a live lease: the daemon runs, or restarted within its TTL)? */
  nodeAlive (name: string): boolean {
    return this.#replica.get(NODES + name) !== undefined
  }

  nodes (): Array<{ name: string } & NodeInfo> {
    return this.#replica.list(NODES).map(([k, e]) => ({ name: k.slice(NODES.length), ...(JSON.parse(e.value.toString()) as NodeInfo) }))
  }

  /** How many runs each live node owns now (own/ keys by value), for status. */
  ownedCounts (): Map<string, number> {
    const out = new Map<string, number>()
    for (const [, e] of this.#replica.list(OWN)) {
      const n = e.value.toString()
      out.set(n, (out.get(n) ?? 0) + 1)
    }
    return out
  }

  /** Call back when a node joins or leaves (its nodes/ key is put or deleted). */
  onNodes (listener: (node: string, alive: boolean) => void): () => void {
    return this.#replica.onChange(c => { if (c.key.startsWith(NODES)) listener(c.key.slice(NODES.length), c.op === 'put') })
  }

  /**
   * False once the host has had no live node for hostDeadAfterSeconds (runs/host-dead.ts: its local heads are then
   * ended as killed by their owners). A node that restarts within the TTL, or is partitioned for less, stays alive.
   */
  hostAlive (host: string): boolean {
    return this.#hosts.hostAlive(host, this.#opts.hostDeadAfterMs ?? 300_000)
  }

  /**
   * Has the node name had no member key for hostDeadAfterSeconds (counted from when this node saw it go, or from this
   * node's start for a name it never saw), a name that joined this cluster (joined/<name>)? Then what it left in a target is nobody else's to sweep (the AWS sweep of a
   * node gone for good, its name never used again). This node's own name is never gone.
   */
  nodeGone (name: string): boolean {
    if (name === this.node) return false
    // Only a node of this cluster: a tag naming any other daemon (single-node, another cluster's) is never ours to judge.
    if (this.#replica.get(JOINED + name) === undefined) return false
    const dead = this.#names.deadForMs(name)
    return dead !== null && dead >= (this.#opts.hostDeadAfterMs ?? 300_000)
  }

  /** ms the host has had no live node, null while one lives (for status and tests) */
  hostDeadForMs (host: string): number | null {
    return this.#hosts.deadForMs(host)
  }

  /** The operation that makes this node the owner of a new run, for the intent's transaction. */
  claimOp (runId: string): ReturnType<Namespace['put']> {
    return this.#opts.ns.put(OWN + runId).value(this.node).lease(this.#opts.membership.leaseId)
  }

  /**
   * Give up a run that needs no owner any more (terminal, every target revoked): its key would otherwise live as long
   * as the node, one per run ever armed. Decided on the record as etcd has it, and compared on that record's mod
   * revision in the same transaction: a revoke this node keeps only in memory (a quorum loss, deferred-records.ts)
   * is not in etcd yet, and releasing then would let another node adopt the run and revoke it a second time.
   * True if released; false if the run still needs its owner, is not this node's, or moved on meanwhile.
   */
  async release (runId: string): Promise<boolean> {
    if (this.ownerOf(runId) !== this.node) return false
    const entry = this.#opts.entry !== undefined ? this.#opts.entry(runId) : this.#opts.runs().find(e => e.run.runId === runId)
    if (entry === undefined || needsOwner(entry.run)) return false
    try {
      const res = await this.#opts.ns.if(OWN + runId, 'Value', '==', this.node).and(`runs/${runId}`, 'Mod', '==', entry.mod)
        .then(this.#opts.ns.delete().key(OWN + runId)).commit()
      if (res.succeeded) await this.#replica.waitFor(Number(res.header.revision))
      return res.succeeded
    } catch (err) {
      throw clusterError(err, `releasing run ${runId}`)
    }
  }

  /**
   * One takeover: true if this node now owns the run, false if another node did or the run moved on. A takeover
   * whose answer was lost after it committed is tried again by the client and fails its compare on its own owner key:
   * the key holding this node's name on this node's lease, with the run still at the revision read, is this takeover's
   * (own-write.ts). Reported as lost, the run would stay owned by this node and handled by none. A run this node's
   * mirror already shows owned is not tried (its own earlier takeover would read back as this one).
   */
  async adopt (runId: string, runMod: number): Promise<boolean> {
    if (!this.#opts.membership.unfenced || this.ownerOf(runId) !== null) return false
    const mine: Written[] = [
      { key: OWN + runId, value: this.node, lease: this.#opts.membership.leaseId },
      { key: `runs/${runId}`, mod: runMod }
    ]
    let revision: number | null
    try {
      const res = await this.#opts.ns.if(OWN + runId, 'Create', '==', 0).and(`runs/${runId}`, 'Mod', '==', runMod)
        .then(this.claimOp(runId)).else(...readBack(this.#opts.ns, mine)).commit()
      revision = res.succeeded ? Number(res.header.revision) : ownWriteRevision(res, mine)
    } catch (err) {
      // Every try failed, the first perhaps after it committed: what etcd holds says whether this node owns it now.
      revision = await afterLostAnswer(this.#opts.ns, mine)
      if (revision === null) throw clusterError(err, `adopting run ${runId}`)
    }
    if (revision === null) return false
    // Outside the try: a mirror that does not reach the takeover in time (NFS_ERR_CLUSTER_UNAVAILABLE) is not a lost
    // answer to read back and wait for again. The sweep counts it failed; this node owns the run once its mirror says so.
    await this.#replica.waitFor(revision)
    return true
  }

  /**
   * Adopt every run that still needs an owner (not terminal, or a target not yet revoked) and has none. Called when
   * own/ keys are deleted, every 30 s and after a watch reconnect. The runs this node is the preferred adopter of
   * (adopter.ts) go first, after one jitter; the rest after ADOPT_GRACE_MS and a jitter of its own, if still
   * orphaned then. At most ADOPT_IN_FLIGHT transactions at a time: a herd must not push etcd past its deadlines.
   * A transaction that fails (etcd slow or out of reach) is left to the next sweep; the ids adopted are returned.
   */
  async adoptOrphans (): Promise<string[]> {
    if (!this.#opts.membership.unfenced) return []
    // A dead node's keys all go in one revision, delivered as one batch: let the whole batch land in the mirror
    // before reading it, or the first delete alone would start a sweep that sees one orphan and the dead node alive.
    await new Promise(resolve => setImmediate(resolve))
    const adopted: string[] = []
    const orphans = (): Array<{ run: RunRecord, mod: number }> =>
      this.#opts.runs().filter(({ run }) => needsOwner(run) && this.ownerOf(run.runId) === null)
    const all = orphans()
    // Every release of a revoked run is a delete of own/ too: most sweeps find nothing and stop here, cheaply.
    if (all.length === 0) return adopted
    const live = this.nodes().map(n => ({ name: n.name, host: n.host }))
    const first = all.filter(({ run }) => preferredAdopter(run, live) === this.node)
    const rest = new Set(all.filter(({ run }) => preferredAdopter(run, live) !== this.node).map(o => o.run.runId))
    const tryOne = async ({ run, mod }: { run: RunRecord, mod: number }): Promise<void> => {
      if (this.ownerOf(run.runId) !== null) return
      try {
        if (await this.adopt(run.runId, mod)) adopted.push(run.runId)
      } catch {
        this.#failedAdoptions++
      }
    }
    if (first.length > 0) {
      await sleep(this.#jitter())
      await inPool(first, ADOPT_IN_FLIGHT, tryOne)
    }
    if (rest.size > 0) {
      await sleep(ADOPT_GRACE_MS + this.#jitter())
      // Read again: the preferred adopters took most, and a mod read before the grace would only fail the compare.
      // Runs orphaned meanwhile are the next sweep's (it starts after this one), with their own grace.
      if (this.#opts.membership.unfenced) await inPool(orphans().filter(o => rest.has(o.run.runId)), ADOPT_IN_FLIGHT, tryOne)
    }
    return adopted
  }

  /** adoption transactions that failed on an etcd error since start (left to the next sweep) */
  get failedAdoptions (): number {
    return this.#failedAdoptions
  }

  /** Call back when a run loses its owner (its node's lease expired): the moment to adopt. */
  onOrphaned (listener: (runId: string) => void): () => void {
    return this.#replica.onChange(c => { if (c.op === 'delete' && c.key.startsWith(OWN)) listener(c.key.slice(OWN.length)) })
  }

  async close (): Promise<void> {
    await this.#replica.close()
  }
}
