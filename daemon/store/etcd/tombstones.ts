// Deletion tombstones of the etcd store (CLUSTER.md "Keys"): sdel/<scope>/<name> says who deleted a secret last,
// written with the delete so that every node's change feed, and so its secret.deleted event, can say who (a watch's
// delete carries no value). A tombstone is needed only until every node's watch has told the delete: it lives on a
// short lease (TOMBSTONE_TTL_S, one lease a node shares between its deletes and grants again as it runs out), and
// each node forgets it once its own feed has used it, so neither etcd nor any node's memory grows with every name
// ever deleted. A node cut off for longer reads the tombstone's put back from the watch history on reconnect (the
// put carries its value), so its event still says who. A workspace delete's wsdel/ tombstone uses the same lease.
import type { Namespace } from 'etcd3'
import { clusterError } from './etcd-client.js'
import type { Replica, ReplicaChange } from './replica.js'
import { GONE, META } from './secret-keys.js'

/** how long a deletion's tombstone lives in etcd, in seconds (its lease's TTL) */
export const TOMBSTONE_TTL_S = 300
/** tombstones kept in memory at most (each is forgotten once used; this bounds those whose delete never came) */
export const TOMBSTONES_MAX = 10_000

export interface Tombstone { by: string, mod: number }

export class Tombstones {
  readonly #ns: Namespace
  readonly #replica: Replica
  readonly #ttlS: number
  readonly #closed: () => boolean
  // who deleted each secret (by <scope>/<name>) last, and at which revision
  readonly #gone = new Map<string, Tombstone>()
  // The lease this node puts its tombstones on, and when it runs out by this node's clock (from before the grant).
  #lease: { id: string, until: number } | null = null
  #grant: Promise<string> | null = null

  constructor (ns: Namespace, replica: Replica, ttlSeconds: number, closed: () => boolean) {
    this.#ns = ns
    this.#replica = replica
    this.#ttlS = ttlSeconds
    this.#closed = closed
    for (const [k, e] of replica.list(GONE)) this.#remember(k.slice(GONE.length), { by: byOf(e.value), mod: e.mod })
  }

  /** A change of an sdel/ key (a delete's transaction puts it before it deletes the secret: it is told first). */
  apply (c: ReplicaChange): void {
    if (c.entry === null) this.#gone.delete(c.key.slice(GONE.length))
    else this.#remember(c.key.slice(GONE.length), { by: byOf(c.entry.value), mod: c.entry.mod })
  }

  /**
   * The tombstone of the secret `<scope>/<name>` whose metadata was deleted after being written at `lastMod`, and
   * forget it: used by this delete (the next delete of the name writes its own). Who deleted only when it is newer
   * than the secret's last write; none: a workspace's deletion took the secret.
   */
  use (name: string, lastMod: number): { by: string } | Record<string, never> {
    const tomb = this.#gone.get(name)
    if (tomb === undefined) return {}
    this.#gone.delete(name)
    return tomb.mod > lastMod ? { by: tomb.by } : {}
  }

  #remember (name: string, tomb: Tombstone): void {
    this.#gone.delete(name)
    this.#gone.set(name, tomb)
    // The oldest first (a Map keeps insertion order): one whose delete never reached this node.
    if (this.#gone.size > TOMBSTONES_MAX) this.#gone.delete(this.#gone.keys().next().value!)
  }

  /** tombstones held in memory now */
  get size (): number { return this.#gone.size }

  /**
   * The lease for a new tombstone: this node's current one while it has more than 40% of its TTL left (so a tombstone
   * always lives a good while), else a new one. Grants are shared by concurrent deletes. etcd only ever extends a
   * lease (a leader change renews them), so the local estimate errs on the safe side.
   */
  async lease (): Promise<string> {
    const cur = this.#lease
    if (cur !== null && cur.until - Date.now() > this.#ttlS * 400) return cur.id
    this.#grant ??= (async () => {
      const asked = Date.now()
      try {
        const res = await this.#ns.leaseClient.leaseGrant({ TTL: this.#ttlS, ID: 0 })
        this.#lease = { id: String(res.ID), until: asked + Number(res.TTL) * 1000 }
        return this.#lease.id
      } catch (err) {
        throw clusterError(err, 'granting a lease for deletion tombstones')
      }
    })().finally(() => { this.#grant = null })
    return await this.#grant
  }

  /** A write on the lease failed as unavailable: the lease may be gone sooner than counted; a new one next time. */
  dropLease (): void { this.#lease = null }

  /**
   * Tombstones written by daemons older than the tombstone lease have none, and stayed in etcd for good (one key per
   * name ever deleted). Each start takes them up: a tombstone whose secret exists again (made anew since) is stale and
   * deleted; any other is put on this node's tombstone lease, so it lives as long as a fresh one (its delete may still
   * be told to a node that resyncs) and then goes. Each change compares the tombstone's mod revision (and the
   * secret's absence), so a tombstone rewritten meanwhile by a delete is left alone. Best effort: what fails waits
   * for the next start. The mirror holds every sdel/ key with its lease as loaded (in pages: replica.ts); reading
   * them again in one range failed for good once they were past the client's receive limit.
   */
  async tidyLegacy (): Promise<number> {
    const legacy = this.#replica.list(GONE).filter(([, e]) => e.lease === '0')
    let done = 0
    for (const [key, e] of legacy) {
      if (this.#closed()) break
      const secret = META + key.slice(GONE.length)
      const lease = await this.lease()
      const kept = await this.#ns.if(key, 'Mod', '==', e.mod).and(secret, 'Create', '==', 0)
        .then(this.#ns.put(key).value(e.value).lease(lease)).commit()
      if (kept.succeeded) { done++; continue }
      const dropped = await this.#ns.if(key, 'Mod', '==', e.mod).then(this.#ns.delete().key(key)).commit()
      if (dropped.succeeded) done++
    }
    return done
  }
}

function byOf (value: Buffer): string {
  return (JSON.parse(value.toString()) as { by: string }).by
}
