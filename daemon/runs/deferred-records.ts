// The revoke path's records when the ledger cannot take them: a full state disk (NFS_ERR_STORAGE) on one node, a
// quorum loss (NFS_ERR_CLUSTER_UNAVAILABLE) in a cluster. Revoking is idempotent, so it does not wait for its record:
// the record is kept here, in memory (and in a journal when one is given), reads show it, and it is written by the
// next write that succeeds or by flush() (the monitor's pass). A restart before that redoes the step, which finds
// nothing left and succeeds. The ledgers themselves only make plain record-level writes; this wraps any of them and
// is the RunLedger the lifecycle uses.
import { isCoded, nfsError } from '../errors.js'
import type { LedgerChange, RunLedger, UpdateOptions } from '../store/run-ledger.js'
import type { RunRecord } from '../types.js'

type Change = (run: RunRecord) => RunRecord | null

/** A record kept in memory, and the ledger's version of the run it was made on. */
export interface DeferredEntry { run: RunRecord, base: number }

/**
 * Where kept records also go, so that a restart (or a node's, while its cluster is out of reach) does not forget
 * them: save() gets every kept record each time that set changes (an empty list once all are written); load() is
 * read once at open.
 */
export interface DeferredJournal {
  load (): Promise<DeferredEntry[]>
  save (entries: DeferredEntry[]): Promise<void>
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
  readonly #journal: DeferredJournal | null
  readonly #kept = new Map<string, DeferredEntry>()
  readonly #listeners = new Set<(c: LedgerChange) => void>()
  readonly #unfollow: () => void
  #saving: Promise<void> = Promise.resolve()
  #closed = false

  constructor (ledger: RunLedger, opts: { journal?: DeferredJournal } = {}) {
    this.#ledger = ledger
    this.#journal = opts.journal ?? null
    this.#unfollow = ledger.onChange(c => {
      // The ledger moved past the version a kept record was made on: written by us (a flush, a later write) or,
      // in a cluster, by another node, whose record then wins (revoking is idempotent).
      const k = this.#kept.get(c.runId)
      if (k !== undefined && (c.run === null || c.run.version > k.base)) {
        this.#kept.delete(c.runId)
        this.#save()
      }
      this.#emit(c)
    })
  }

  /** Open over `ledger`, taking back what `journal` kept; they are written by the next flush or write. */
  static async open (ledger: RunLedger, opts: { journal?: DeferredJournal } = {}): Promise<DeferredRecords> {
    const records = new DeferredRecords(ledger, opts)
    for (const e of await opts.journal?.load() ?? []) if (ledger.get(e.run.runId) !== undefined) records.#kept.set(e.run.runId, e)
    return records
  }

  get revision (): number { return this.#ledger.revision }
  async settle (atLeast?: number): Promise<number> { return await this.#ledger.settle(atLeast) }

  onChange (listener: (change: LedgerChange) => void): () => void {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  get (runId: string): RunRecord | undefined {
    return this.#kept.get(runId)?.run ?? this.#ledger.get(runId)
  }

  all (): readonly RunRecord[] {
    if (this.#kept.size === 0) return this.#ledger.all()
    return this.#ledger.all().map(r => this.#kept.get(r.runId)?.run ?? r)
  }

  async insert (run: Omit<RunRecord, 'version'>): Promise<RunRecord> {
    const rec = await this.#ledger.insert(run)
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
    if (k.run.version !== expectedVersion) throw nfsError('NFS_ERR_CONFLICT', [`run ${runId} changed (version ${k.run.version}, expected ${expectedVersion})`])
    const next = change(structuredClone(k.run))
    if (next === null) return k.run
    const rec = await this.#ledger.update(runId, k.base, () => next, opts)
    await this.#carry()
    return rec
  }

  async recordBestEffort (runId: string, expectedVersion: number, change: Change, opts?: UpdateOptions): Promise<{ run: RunRecord, durable: boolean }> {
    try {
      return { run: await this.update(runId, expectedVersion, change, opts), durable: true }
    } catch (err) {
      if (!cannotWriteNow(err)) throw err
    }
    const cur = this.get(runId)
    if (cur === undefined) throw nfsError('NFS_ERR_RUN_NOT_FOUND', [runId])
    if (cur.version !== expectedVersion) throw nfsError('NFS_ERR_CONFLICT', [`run ${runId} changed (version ${cur.version}, expected ${expectedVersion})`])
    const next = change(structuredClone(cur))
    if (next === null) return { run: cur, durable: !this.#kept.has(runId) }
    const rec: RunRecord = { ...next, runId, version: cur.version + 1 }
    this.#kept.set(runId, { run: rec, base: this.#kept.get(runId)?.base ?? this.#ledger.get(runId)!.version })
    this.#save()
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
      const { version: _v, ...rec } = k.run
      try {
        await this.#ledger.update(runId, k.base, () => ({ ...rec, version: k.base }))
      } catch (err) {
        if (cannotWriteNow(err)) throw err
        // The run moved on without us (another node wrote it) or is gone: nothing of ours is left to write.
        if (this.#kept.get(runId) === k) this.#kept.delete(runId)
        this.#save()
      }
    }
  }

  async remove (runIds: string[]): Promise<number> {
    const n = await this.#ledger.remove(runIds)
    for (const id of runIds) this.#kept.delete(id)
    if (n > 0) this.#save()
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

  #save (): void {
    const journal = this.#journal
    if (journal === null) return
    // One save after another, each of the set as it was then. The journal is a second copy of what memory holds:
    // failing to write it loses nothing memory does not hold.
    const entries = [...this.#kept.values()]
    this.#saving = this.#saving.then(async () => { await journal.save(entries) }).catch(() => {})
  }

  #emit (c: LedgerChange): void {
    for (const l of this.#listeners) {
      try { l(c) } catch { /* a follower's bug must not fail a write that already counts */ }
    }
  }
}
