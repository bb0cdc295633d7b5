// Settled runs (ended, every target revoked) leave the hot ledger for its archive (store/run-archive.ts) once they
// have been settled for ARCHIVE_AFTER_MS, and archived runs past retention are dropped. Run by the monitor's pass,
// beside the pruning of the hot ledger. The delay keeps a run that just ended in the hot set for the reads that
// follow its end at once (the answer of a revoke, `runs show` right after, the owner's wait in a cluster), and
// batches the moves: one archive append and one hot rewrite per pass at most.
import { isCoded } from '../errors.js'
import type { Logger } from '../logger.js'
import { isSettled, type RunLedger } from '../store/run-ledger.js'
import type { RunSummary } from '../store/run-archive.js'
import type { RunRecord } from '../types.js'

export const ARCHIVE_AFTER_MS = 5 * 60_000
// Retention is in days: whole segments are dropped, so once an hour is enough (and the first pass does it too).
const PRUNE_EVERY_MS = 3_600_000

/** When a settled run held its last secret: its end or its last target's revoke, whichever is later. NaN: unknown. */
export function settledAt (r: RunRecord): number {
  let at = r.endedAt !== null ? Date.parse(r.endedAt) : NaN
  for (const t of Object.values(r.targets)) {
    if (t?.revokedAt != null) at = Math.max(Number.isNaN(at) ? 0 : at, Date.parse(t.revokedAt))
  }
  return at
}

export class Archiving {
  readonly #ledger: RunLedger
  readonly #log: Logger
  #prunedAt = -Infinity
  // A broken archive stops archiving until restart (runs then stay in runs.json: nothing is lost), said once.
  #broken = false
  // The last append failed to write (not broken: a full disk); logged once until one succeeds.
  #failing = false

  constructor (ledger: RunLedger, log: Logger) {
    this.#ledger = ledger
    this.#log = log
  }

  /** `mine`: whether this node may move a run (its owner's, as for pruning) */
  async pass (now: Date, retentionDays: number, mine: (r: RunRecord) => boolean): Promise<void> {
    const archive = this.#ledger.archive
    if (archive === undefined || this.#broken) return
    try {
      const before = now.getTime() - ARCHIVE_AFTER_MS
      const due = this.#ledger.all().filter(r => isSettled(r) && settledAt(r) <= before && mine(r)).map(r => r.runId)
      if (due.length > 0) {
        const n = await archive.move(due, now)
        this.#log.info({ archived: n }, 'settled runs moved to the run archive')
        if (this.#failing) this.#log.info('run archive written again')
        this.#failing = false
      }
      if (now.getTime() - this.#prunedAt >= PRUNE_EVERY_MS) {
        this.#prunedAt = now.getTime()
        const n = await archive.prune(new Date(now.getTime() - retentionDays * 86_400_000))
        if (n > 0) this.#log.info({ segments: n }, 'pruned run archive segments past retention')
      }
    } catch (err) {
      if (isCoded(err, 'NFS_ERR_STORAGE')) {
        // A full disk: the runs stay hot and the next pass tries again; said when it begins, not every second.
        if (!this.#failing) this.#log.warn({ err }, 'run archive not written: settled runs stay in runs.json, tried again each pass')
        this.#failing = true
        return
      }
      if (!isCoded(err, 'NFS_ERR_STORE_UNREADABLE')) throw err
      this.#broken = true
      this.#log.error({ err }, 'run archive unusable: settled runs stay in runs.json until it is mended and the daemon restarted')
    }
  }
}

/**
 * The users with runs in the ledger, for the hpc sweep of per-user roots (adapters/hpc.ts `knownUsers`): the hot set's
 * and, once read, the archive's. The archive is read (its summaries, kept in memory since) at the first call, off
 * the caller's path: that sweep sees the hot users only, the next one all of them. A daemon without per-user roots
 * never calls it and never reads the archive for it.
 */
export function knownRunUsers (ledger: RunLedger, log: Logger): () => Iterable<string> {
  // The archive's summaries, kept up to date by the archive itself once read.
  let archived: ReadonlyMap<string, RunSummary> | null = null
  let asked = false
  return () => {
    const users = new Set(ledger.all().map(r => r.user))
    if (!asked && ledger.archive !== undefined) {
      asked = true
      ledger.archive.summaries().then(
        s => { archived = s },
        (err: unknown) => { log.error({ err }, 'run archive unreadable: the hpc sweep sees the users of the hot ledger only') })
    }
    for (const s of archived?.values() ?? []) users.add(s.user)
    return users
  }
}
