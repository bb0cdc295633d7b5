// The etcd store's writes (CLUSTER.md "Writes"): each one transaction comparing the mod revision of the keys it read
// from the mirror, retried on a fresh read when the caller named no version (If-Match), and known as its own when
// its answer was lost after it committed (own-write.ts): a failed compare whose marks read as this write left them,
// or, when every try failed, the same marks read once etcd answers again. One node's writes to one record go one
// after another: racing itself would only burn conflict retries.
import type { Namespace } from 'etcd3'
import { isCoded, nfsError } from '../../errors.js'
import type { WriteOptions } from '../secrets-store-interface.js'
import { clusterError } from './etcd-client.js'
import { afterLostAnswer, ownWriteRevision, readBack, type Written } from './own-write.js'
import type { Replica } from './replica.js'

/** conflicts of an unconditioned write retried on a fresh read before giving up */
const RETRIES = 10

/**
 * One try of a write: the mod revision expected of each key compared (0: absent), what to write, the result to
 * answer, and by which keys a failed compare can still be this write's own success (`mine`).
 */
export interface Step<R> { compare: Array<[string, number]>, ops: unknown[], result: R, mine?: Written[] }

function isStep<R> (x: unknown): x is Step<R> {
  return typeof x === 'object' && x !== null && 'compare' in x && 'ops' in x
}

export class CasWrites {
  readonly #ns: Namespace
  readonly #replica: Replica
  readonly #closed: () => boolean
  readonly #queues = new Map<string, Promise<unknown>>()

  constructor (ns: Namespace, replica: Replica, closed: () => boolean) {
    this.#ns = ns
    this.#replica = replica
    this.#closed = closed
  }

  /**
   * One compare-and-swap write of the record `what`, queued behind this node's earlier writes of it. `attempt`
   * reads the current record from the mirror and returns a Step (or a result: nothing to write); `current` is the
   * record's version for the If-Match check.
   */
  async write<R> (what: string, opts: WriteOptions | undefined, attempt: () => Step<R> | R, current?: () => { version: number } | undefined): Promise<R> {
    const run = async (): Promise<R> => {
      // The If-Match check runs in the queue, against the record as this node's earlier writes left it.
      if (current !== undefined) await this.#expect(opts, current, what)
      return await this.#now(what, opts, attempt)
    }
    const prev = this.#queues.get(what) ?? Promise.resolve()
    const mine = prev.then(run, run)
    const tail = mine.catch(() => {})
    this.#queues.set(what, tail)
    void tail.then(() => { if (this.#queues.get(what) === tail) this.#queues.delete(what) })
    return await mine
  }

  async #now<R> (what: string, opts: WriteOptions | undefined, attempt: () => Step<R> | R): Promise<R> {
    if (this.#closed()) throw nfsError('NFS_ERR_STORAGE', ['the cluster store', 'it is closed'])
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
}
