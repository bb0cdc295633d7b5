// How long each host has had no live node (CLUSTER.md "Adopting is not revoking", the hostDeadAfterSeconds rule),
// from the membership keys nodes/<node> = {host, ...} this node mirrors. A host counts as dead from the moment this
// node saw its last live node go; a host this node has never seen alive counts from when this node started watching
// (it cannot know earlier, and erring late only delays a revoke, while erring early would revoke the secrets of a
// head that still runs). A host with several nodes is alive while any one of them is. The clock is injected.
// The same bookkeeping, keyed by node name, tells how long a node name has had no member key (the AWS sweep of a
// node gone for good).
import { hostKey } from '../rules/host-name.js'

export class HostWatch {
  readonly #now: () => number
  readonly #key: (name: string) => string
  readonly #watchingSince: number
  readonly #live = new Set<string>()
  readonly #deadSince = new Map<string, number>()

  constructor (now: () => number = Date.now, key: (name: string) => string = hostKey) {
    this.#now = now
    this.#key = key
    this.#watchingSince = now()
  }

  /** The hosts of every live node, as a whole list (each change of nodes/ hands in the new list). */
  update (liveHosts: Iterable<string>): void {
    const now = this.#now()
    const next = new Set<string>()
    for (const h of liveHosts) next.add(this.#key(h))
    for (const h of this.#live) if (!next.has(h)) this.#deadSince.set(h, now)
    for (const h of next) this.#deadSince.delete(h)
    this.#live.clear()
    for (const h of next) this.#live.add(h)
  }

  /** ms the host has had no live node (null: one is alive now). */
  deadForMs (host: string): number | null {
    const h = this.#key(host)
    if (this.#live.has(h)) return null
    return this.#now() - (this.#deadSince.get(h) ?? this.#watchingSince)
  }

  /** Alive, for the rule: a live node now, or none for less than `afterMs`. */
  hostAlive (host: string, afterMs: number): boolean {
    const dead = this.deadForMs(host)
    return dead === null || dead < afterMs
  }
}
