// The revoke path's records when the ledger cannot take them: a full state disk (NFS_ERR_STORAGE) on one node, a
// quorum loss (NFS_ERR_CLUSTER_UNAVAILABLE) in a cluster. Revoking is idempotent, so it does not wait for its record:
// the record is kept here, in memory (and in a journal when one is given), reads show it, and it is written by the
// next write that succeeds or by flush() (the monitor's pass). A restart before that redoes the step, which finds
// nothing left and succeeds. The ledgers themselves only make plain record-level writes; this wraps any of them and
// is the RunLedger the lifecycle uses.
import { isCoded, nfsError } from '../errors.js'
import type { RecordJournal } from '../store/deferred-journal.js'
import type { InsertOptions, LedgerArchive, LedgerChange, RunLedger, UpdateOptions } from '../store/run-ledger.js'
import type { RunRecord } from '../types.js'

type Change = (run: RunRecord) => RunRecord | null

/**
 * A kept record's version is the one the ledger would have given it. A write the backend called unavailable may still
 * have been applied (etcd commits a proposal once quorum returns): so a ledger behind that version is written over
 * with the kept record, and a ledger at or past it (another node went on) wins.
 */
const behind = (ledger: RunRecord | undefined, kept: RunRecord): boolean => ledger !== undefined && ledger.version < kept.version

/** What DeferredRecords needs besides the ledger. */
export interface DeferredOptions {
  /**
   * Where kept records also go, so that a restart while the cluster is out of reach does not forget them
   * (store/deferred-journal.ts): save() gets every kept record each time that set changes, load() is read at open.
   */
  journal?: RecordJournal
  /** told when the journal could not be written (memory still holds the records) */
  onJournalError?: (err: unknown) => void
}

/** A write the backend cannot make now, as opposed to one it refuses (a conflict, a missing run). */
export function cannotWriteNow (err: unknown): boolean {
  return isCoded(err, 'NFS_ERR_STORAGE') || isCoded(err, 'NFS_ERR_CLUSTER_UNAVAILABLE')
}

/** The run ledger as the lifecycle uses it: a RunLedger that can also keep the revoke path's records for later. */
export interface DeferredLedger extends RunLedger {
  /**
   * update, except that a write the backend cannot make now (cannotWriteNow) still makes the change the truth here,
   * with `durable: false`: kept until a later write or flush() carries it.
   */
  recordBestEffort (runId: string, expectedVersion: number, change: Change, opts?: UpdateOptions): Promise<{ run: RunRecord, durable: boolean }>
  /** Runs whose latest record is kept in memory only. */
  unsynced (): string[]
  /** Write every kept record. A backend that still cannot write rejects, and what is left stays kept. */
  flush (): Promise<void>
}

export class DeferredRecords implements DeferredLedger {
  readonly #ledger: RunLedger
  readonly #opts: DeferredOptions
  readonly #kept = new Map<string, RunRecord>()
  // Runs whose kept record was an owner's write: written as one later too (a node that lost the run writes nothing).
  readonly #asOwner = new Set<string>()
  readonly #listeners = new Set<(c: LedgerChange) => void>()
  readonly #unfollow: () => void
  #saving: Promise<void> = Promise.resolve()
  #closed = false

  /** the ledger's archive, except that a run whose latest record is kept here is not moved (its hot record is behind) */
  readonly archive?: LedgerArchive

  constructor (ledger: RunLedger, opts: DeferredOptions = {}) {
    this.#ledger = ledger
    this.#opts = opts
    const a = ledger.archive
    if (a !== undefined) {
      this.archive = {
        list: async () => await a.list(),
        find: async id => await a.find(id),
        summaries: async () => await a.summaries(),
        prune: async horizon => await a.prune(horizon),
        move: async (ids, now) => await a.move(ids.filter(id => !this.#kept.has(id)), now)
      }
    }
    this.#unfollow = ledger.onChange(c => {
      // The ledger reached a kept record's version: another node went on (in a cluster), and its record wins
      // (revoking is idempotent). A run removed is gone for us too.
      const k = this.#kept.get(c.runId)
      if (k !== undefined && (c.run === null || !behind(c.run, k))) this.#forget(c.runId)
      this.#emit(c)
    })
  }

  /**
   * Open over `ledger`, taking back what the journal kept and the ledger has not reached; they are written by the next
   * flush or write.
   */
  static async open (ledger: RunLedger, opts: DeferredOptions = {}): Promise<DeferredRecords> {
    const records = new DeferredRecords(ledger, opts)
    for (const run of await opts.journal?.load() ?? []) {
      if (behind(ledger.get(run.runId), run)) records.#kept.set(run.runId, run)
    }
    return records
  }

  get revision (): number { return this.#ledger.revision }
  async settle (atLeast?: number): Promise<number> { return await this.#ledger.settle(atLeast) }

  onChange (listener: (change: LedgerChange) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  get (runId: string): RunRecord | undefined {
    return this.#kept.get(runId) ?? this.#ledger.get(runId)
  }

  all (): readonly RunRecord[] {
    if (this.#kept.size === 0) return this.#ledger.all()
    return this.#ledger.all().map(r => this.#kept.get(r.runId) ?? r)
  }

  async insert (run: Omit<RunRecord, 'version'>, opts?: InsertOptions): Promise<RunRecord> {
    // Kept records first: an end kept here is still a live run in the ledger, and the insert's own count of the user's
    // live runs (liveLimit) would refuse an arm the quota, which reads through this wrapper, has just let through.
    if (opts?.liveLimit !== undefined) await this.#carry()
    const rec = await this.#ledger.insert(run, opts)
    await this.#carry()
    return rec
  }

  /** A plain write: it counts once written. Over a kept record it writes that record's change on top of it. */
  async update (runId: string, expectedVersion: number, change: Change, opts?: UpdateOptions): Promise<RunRecord> {
    const k = this.#kept.get(runId)
    if (k === undefined) {
      const rec = await this.#ledger.update(runId, expectedVersion, change, opts)
      await this.#carry()
      return rec
    }
    if (k.version !== expectedVersion) throw nfsError('NFS_ERR_CONFLICT', [`run ${runId} changed (version ${k.version}, expected ${expectedVersion})`])
    const next = change(structuredClone(k))
    if (next === null) return k
    const rec = await this.#writeOver(runId, next, opts)
    await this.#carry()
    return rec
  }

  async recordBestEffort (runId: string, expectedVersion: number, change: Change, opts?: UpdateOptions): Promise<{ run: RunRecord, durable: boolean }> {
    // A run with a kept record waits for the next flush as a whole: its later records (a revoke after its end) join
    // the kept one instead of trying the backend again. Without quorum each try costs the request deadline, and the
    // end and its revoke then reach the journal together, so a restart never finds the one without the other.
    if (!this.#kept.has(runId)) {
      try {
        return { run: await this.update(runId, expectedVersion, change, opts), durable: true }
      } catch (err) {
        if (!cannotWriteNow(err)) throw err
      }
    }
    const cur = this.get(runId)
    if (cur === undefined) throw nfsError('NFS_ERR_RUN_NOT_FOUND', [runId])
    if (cur.version !== expectedVersion) throw nfsError('NFS_ERR_CONFLICT', [`run ${runId} changed (version ${cur.version}, expected ${expectedVersion})`])
    const next = change(structuredClone(cur))
    if (next === null) return { run: cur, durable: !this.#kept.has(runId) }
    const rec: RunRecord = { ...next, runId, version: cur.version + 1 }
    this.#kept.set(runId, rec)
    if (opts?.asOwner === true) this.#asOwner.add(runId)
    // In the journal before the caller goes on: what follows a revoke's record (its audit line, the answer) must never
    // be seen by anyone while a crash would still forget the record and revoke again.
    await this.#save()
    // Followers (the event bus) see it now: its revision is the ledger's, not raised, as nothing was written.
    this.#emit({ revision: this.#ledger.revision, op: 'put', runId, version: rec.version, run: rec, previous: cur, durable: false })
    return { run: rec, durable: false }
  }

  unsynced (): string[] {
    return [...this.#kept.keys()]
  }

  async flush (): Promise<void> {
    for (const [runId, k] of [...this.#kept]) {
      if (this.#kept.get(runId) !== k) continue
      try {
        await this.#writeOver(runId, k, this.#asOwner.has(runId) ? { asOwner: true } : undefined)
      } catch (err) {
        if (cannotWriteNow(err)) throw err
        // The run went on without us (another node wrote it meanwhile) or is gone: nothing of ours is left to write.
        if (this.#kept.get(runId) === k) this.#forget(runId)
      }
    }
  }

  /**
   * Write `next` over the ledger's record of a run with a kept record (compare-and-swap on the ledger's version as
   * read now), and forget the kept record. A ledger that reached the kept version meanwhile is not written over.
   */
  async #writeOver (runId: string, next: RunRecord, opts?: UpdateOptions): Promise<RunRecord> {
    const k = this.#kept.get(runId)
    for (let tries = 1; ; tries++) {
      const now = this.#ledger.get(runId)
      if (now === undefined) throw nfsError('NFS_ERR_RUN_NOT_FOUND', [runId])
      if (k !== undefined && !behind(now, k)) throw nfsError('NFS_ERR_CONFLICT', [`run ${runId} went on to version ${now.version} on the ledger`])
      try {
        const rec = await this.#ledger.update(runId, now.version, () => next, opts)
        if (this.#kept.get(runId) === k) this.#forget(runId)
        return rec
      } catch (err) {
        // A conflict can be this node's own earlier write, answered "unavailable" and committed once quorum returned,
        // that its view of the ledger has not reached yet: read fresh (a barrier) and judge again. Bounded, as a node
        // that lost the run's ownership keeps meeting a conflict.
        if (tries >= 3 || !isCoded(err, 'NFS_ERR_CONFLICT')) throw err
        await this.#ledger.settle()
      }
    }
  }

  async remove (runIds: string[]): Promise<number> {
    const n = await this.#ledger.remove(runIds)
    for (const id of runIds) if (this.#kept.has(id)) this.#forget(id)
    return n
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    // Last chance for kept records; if the backend still refuses, the next start redoes their steps.
    await this.flush().catch(() => {})
    await this.#saving
    this.#unfollow()
    this.#listeners.clear()
    await this.#ledger.close()
  }

  /** After a write that succeeded, the ledger can take what was kept too (on one node: the disk has room again). */
  async #carry (): Promise<void> {
    if (this.#kept.size > 0) await this.flush().catch(() => {})
  }

  #forget (runId: string): void {
    this.#kept.delete(runId)
    this.#asOwner.delete(runId)
    void this.#save()
  }

  /** Save the kept set as it is now; resolves once saved (never rejects). */
  #save (): Promise<void> {
    const { journal, onJournalError } = this.#opts
    if (journal === undefined) return Promise.resolve()
    // One save after another, each of the set as it was then. The journal is a second copy of what memory holds:
    // failing to write it (a full disk) loses nothing memory does not hold, and never fails a revoke.
    const records = [...this.#kept.values()]
    this.#saving = this.#saving.then(async () => { await journal.save(records) }).catch((err: unknown) => { onJournalError?.(err) })
    return this.#saving
  }

  #emit (c: LedgerChange): void {
    for (const l of this.#listeners) {
      try { l(c) } catch { /* a follower's bug must not fail a write that already counts */ }
    }
  }
}
