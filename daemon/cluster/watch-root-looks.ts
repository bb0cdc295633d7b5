// A cluster node's look at the shared roots it polls (watch-roots.ts runs one every second): each is judged with the
// watch service's check again (the checks of `watch add`, on this node's view of the path). A root whose path is not
// the dir that was added any more (a symlink swapped in, another owner) is given up at once; one not seen (its mount
// lost here) after releaseAfterMs, so that a node that sees it takes it over. The TTL by default: the next poller reads
// as new the starts written since a TTL and 2 s before it saw the key go (seedsSince), which covers the time this node
// was blind. Giving up is a transaction on the poller key's value: only a key still this node's goes.
import type { Namespace } from 'etcd3'
import type { Logger } from '../logger.js'
import type { Replica } from '../store/etcd/replica.js'
import type { RootCheck, RootRefusal, StoredWatch } from '../store/watch-roots.js'
import { WOWN } from './watch-root-keys.js'

export interface PolledRootLooksOptions {
  ns: Namespace
  replica: Replica
  node: string
  now: () => number
  releaseAfterMs: number
  logger: Pick<Logger, 'warn'>
  /** told of a root given up, and why (the claims say it once a reason) */
  released: (hash: string, reason: string) => void
}

export class PolledRootLooks {
  readonly #o: PolledRootLooksOptions
  /** roots this node polls and has not seen since (hash -> ms) */
  readonly #unseenSince = new Map<string, number>()

  constructor (o: PolledRootLooksOptions) {
    this.#o = o
  }

  /** One look at `stored`'s roots that this node polls; `stop` cuts it short (the registry closed). */
  async look (stored: ReadonlyArray<{ hash: string, w: StoredWatch }>, check: RootCheck, stop: () => boolean): Promise<void> {
    for (const { hash, w } of stored) {
      if (stop()) return
      if (this.#o.replica.get(WOWN + hash)?.value.toString() !== this.#o.node) { this.#unseenSince.delete(hash); continue }
      const why = await check(w)
      if (why === null) { this.#unseenSince.delete(hash); continue }
      const since = this.#unseenSince.get(hash) ?? this.#o.now()
      this.#unseenSince.set(hash, since)
      if (!why.unsafe && this.#o.now() - since < this.#o.releaseAfterMs) continue
      await this.#release(hash, w, why)
    }
  }

  /** Give up polling a root: its poller key goes (only if it is still this node's), and another node may claim it. */
  async #release (hash: string, w: StoredWatch, why: RootRefusal): Promise<void> {
    const res = await this.#o.ns.if(WOWN + hash, 'Value', '==', this.#o.node).then(this.#o.ns.delete().key(WOWN + hash)).commit()
    this.#unseenSince.delete(hash)
    if (!res.succeeded) return
    this.#o.released(hash, why.reason)
    this.#o.logger.warn({ root: w.root, reason: why.reason }, why.unsafe ? 'stopped polling a shared watch root: its path is not the dir that was added' : 'released a shared watch root this node cannot see; a node that sees it takes it over')
    await this.#o.replica.waitFor(Number(res.header.revision))
  }
}
