// The run ledger: durable, write-ahead record of every run and every target it touched. Each change is durable before
// it counts, and names the version it expects to replace, so a shared implementation (etcd) drops in with
// compare-and-swap semantics. On one node the ledger is two files: runs.json, a snapshot (written temp, fsync, rename),
// and runs.journal, the changes since, one line each (store/run-journal.ts); a change is one append and one
// fdatasync, and the journal is folded into the snapshot when the ledger goes quiet or the journal grows. What to do
// when a write cannot be made (a full disk) is not the ledger's business: runs/deferred-records.ts keeps the revoke
// path's records meanwhile.
import { basename, dirname, join } from 'node:path'
import { nfsError } from '../errors.js'
import { failpoint, failpointPause } from '../failpoints.js'
import type { RunRecord } from '../types.js'
import { AtomicJsonFile, readFileBytes } from './atomic-file.js'
import { applyJournal, parseJournal, RunJournal, type JournalChange } from './run-journal.js'
import { limitReached, liveRunsOf, type InsertOptions } from './live-runs.js'
import { isSettled, openRunArchive, type RunArchive } from './run-archive.js'

export type { InsertOptions }
export { isSettled }

/**
 * Where a ledger keeps settled runs out of its hot set (store/run-archive.ts). `all()` and `get()` never see them;
 * what shows or counts ended runs reads them here, on demand.
 */
export interface LedgerArchive extends RunArchive {
  /**
   * Move these runs (ignored unless settled and in the hot set) out of the hot set: appended to the archive durably
   * first, then dropped from the hot file, so a crash between the two leaves a run in both, never in neither. Not a
   * change of any run: no LedgerChange is emitted. How many moved.
   */
  move (runIds: readonly string[], now: Date): Promise<number>
  /** drop archived runs that ended before `horizon` (whole segments); how many segments */
  prune (horizon: Date): Promise<number>
}

interface LedgerData {
  format: 1
  runs: RunRecord[]
  /** the last journal change folded into this snapshot (0 or absent: none) */
  journalSeq?: number
}

/**
 * `asOwner`: the write is the owner's (placing, revoking), so a shared ledger also compares that this node still owns
 * the run (CLUSTER.md "Ownership"); a single node owns every run and ignores it.
 */
export interface UpdateOptions {
  asOwner?: boolean
  /**
   * Another file's fsync that a file ledger issues beside its own data fsync, so that both share a journal commit
   * (runs/provision.ts: the run's audit line). A ledger may ignore it: the caller still awaits it itself afterwards.
   */
  syncAlong?: () => Promise<void>
  /**
   * Called with the record about to be written, once the change is decided and nothing can overtake it (inside a file
   * ledger's one-at-a-time section, before the journal's append), so that the caller can start what needs only the
   * decision beside the write (monitor.ts: a terminal run's local target removed while its end is flushed). Not
   * called when the change is refused (a conflict, `change` returning null). A shared ledger decides only at its
   * compare-and-swap, after the write, and never calls it. The write can still fail after it: whatever it starts must
   * be idempotent and safe to redo (a crash there finds the run live, ends it again and revokes again).
   */
  decided?: (rec: RunRecord) => void
}

/**
 * One change of a run record, in revision order: what the event bus and caches (and other nodes) follow. It carries
 * the record before and after (records hold names, never values), so a follower needs no read of its own, which on
 * a shared ledger could already reflect a later change.
 */
export interface LedgerChange {
  revision: number
  op: 'put' | 'delete'
  runId: string
  version: number
  /** the record after the change; null when it was removed */
  run: RunRecord | null
  /** the record before the change as this node knew it; null for an insert */
  previous: RunRecord | null
  /** false: a record kept in memory because it could not be written yet (runs/deferred-records.ts); its revision is not raised */
  durable?: boolean
}

/**
 * The run ledger. Reads are synchronous and reflect `revision`; a read that must not be stale (the retry of a
 * conflicting compare-and-swap) first awaits `settle()`, which a file ledger answers at once (one process holds the
 * state dir) and a shared one once its replica has caught up. Writes are record-level compare-and-swap.
 */
export interface RunLedger {
  /** the revision the synchronous reads reflect; every change a reader can see raises it */
  readonly revision: number
  /** resolve once reads reflect at least `atLeast` (default: every write acknowledged so far); the revision reached */
  settle (atLeast?: number): Promise<number>
  /** follow every change from now on, in revision order; returns the unsubscribe function */
  onChange (listener: (change: LedgerChange) => void): () => void
  all (): readonly RunRecord[]
  get (runId: string): RunRecord | undefined
  /**
   * Durably record a new run (the write-ahead intent). With `liveLimit`, refused (NFS_ERR_LIMIT) when the run's uid
   * already has that many live runs, counted atomically with the insert (over the whole cluster for a shared ledger).
   */
  insert (run: Omit<RunRecord, 'version'>, opts?: InsertOptions): Promise<RunRecord>
  /**
   * Apply `change` to the run if its version is still `expectedVersion`; NFS_ERR_CONFLICT otherwise.
   * `change` returns the next record (without bumping the version: the ledger does) or null for no change.
   */
  update (runId: string, expectedVersion: number, change: (run: RunRecord) => RunRecord | null, opts?: UpdateOptions): Promise<RunRecord>
  remove (runIds: string[]): Promise<number>
  close (): Promise<void>
  /** absent: the ledger keeps every run in its hot set until pruned (etcd) */
  readonly archive?: LedgerArchive
}

const HEAD = Buffer.from('{"format":1,"runs":[')
const COMMA = Buffer.from(',')

/**
 * The snapshot's bytes, exactly JSON.stringify(data) + newline, from each record's JSON kept beside it: a fold
 * encodes only the records that changed since the last one, not every run the ledger retains. Records are never
 * changed in place (update clones), so a record object's JSON never goes stale.
 */
function ledgerSerializer (): (data: LedgerData) => Buffer {
  const encoded = new WeakMap<RunRecord, Buffer>()
  return data => {
    const parts: Buffer[] = [HEAD]
    for (const [i, r] of data.runs.entries()) {
      let b = encoded.get(r)
      if (b === undefined) {
        b = Buffer.from(JSON.stringify(r), 'utf8')
        encoded.set(r, b)
      }
      if (i > 0) parts.push(COMMA)
      parts.push(b)
    }
    parts.push(Buffer.from(data.journalSeq === undefined ? ']}\n' : `],"journalSeq":${data.journalSeq}}\n`))
    return Buffer.concat(parts)
  }
}

function validate (raw: unknown, path: string): LedgerData {
  const data = raw as Partial<LedgerData> | null
  if (data === null || typeof data !== 'object' || data.format !== 1 || !Array.isArray(data.runs)) {
    throw nfsError('NFS_ERR_STORE_UNREADABLE', [path, 'not a run ledger of format 1'])
  }
  if (data.journalSeq !== undefined && (!Number.isSafeInteger(data.journalSeq) || data.journalSeq < 0)) {
    throw nfsError('NFS_ERR_STORE_UNREADABLE', [path, 'its journalSeq is not a count'])
  }
  for (const r of data.runs) {
    if (typeof r?.runId !== 'string' || typeof r.state !== 'string' || typeof r.version !== 'number' || typeof r.targets !== 'object') {
      throw nfsError('NFS_ERR_STORE_UNREADABLE', [path, 'a run record is malformed'])
    }
  }
  return data as LedgerData
}

/** the journal beside a ledger's snapshot: runs.json -> runs.journal */
export function journalPathOf (path: string): string {
  return join(dirname(path), `${basename(path).replace(/\.json$/, '')}.journal`)
}

/**
 * The journal is folded into the snapshot once the ledger has been quiet this long (so runs.json is current soon after
 * a burst of changes, for whoever reads it: backups, an admin), or at once when it holds FOLD_LINES changes or
 * FOLD_BYTES, so that a start never replays much.
 */
const FOLD_QUIET_MS = 250
const FOLD_LINES = 2000
const FOLD_BYTES = 8 * 1024 * 1024

/**
 * The runs a ledger at `path` holds on disk, its snapshot and its journal together, read without changing either (a
 * torn last line of the journal is left out, not cut off): for `cluster import` of a stopped or crashed daemon's
 * state dir, and for tests that look at what reached the disk.
 */
export async function readLedgerRuns (path: string): Promise<RunRecord[]> {
  return replayLedger(await new AtomicJsonFile<LedgerData>(path).read(), await readFileBytes(journalPathOf(path)), path)
}

/**
 * The runs of a ledger from its snapshot (parsed; null: none) and its journal's bytes (null: none), checked as a start
 * checks them (NFS_ERR_STORE_UNREADABLE naming the file); a torn last journal line is left out. Pure: readLedgerRuns
 * and the tests' synchronous reader (test/helpers/ledger-file.ts) share it.
 */
export function replayLedger (snapshot: unknown, journal: Buffer | null, path: string): RunRecord[] {
  const data = snapshot === null ? { format: 1 as const, runs: [] } : validate(snapshot, path)
  const byId = new Map(data.runs.map(r => [r.runId, r]))
  if (journal !== null) applyJournal(byId, parseJournal(journal, journalPathOf(path)).changes, data.journalSeq ?? 0)
  return [...byId.values()]
}

/** `archiveDir`: where settled runs go (default `runs-archive/` beside the file); null: none, all runs stay hot. */
export async function openRunLedger (path: string, opts: { archiveDir?: string | null } = {}): Promise<RunLedger> {
  const archiveDir = opts.archiveDir === undefined ? join(dirname(path), 'runs-archive') : opts.archiveDir
  const archive = archiveDir === null ? null : openRunArchive(archiveDir)
  // Hot records already in the archive, whose move's removal from the hot set failed (see move).
  const appended = new Map<string, RunRecord>()
  const snapshot = new AtomicJsonFile<LedgerData>(path, { mode: 0o600, serialize: ledgerSerializer() })
  const raw = await snapshot.read()
  const data = raw === null ? { format: 1 as const, runs: [] } : validate(raw, path)
  const byId = new Map(data.runs.map(r => [r.runId, r]))
  const { journal, changes } = await RunJournal.open(journalPathOf(path))
  // The last change applied: the snapshot's, then the journal's lines after it.
  let seq = applyJournal(byId, changes, data.journalSeq ?? 0)
  let revision = 0
  const listeners = new Set<(change: LedgerChange) => void>()
  // Called once a change is the truth (written).
  const emit = (op: LedgerChange['op'], rec: RunRecord, previous: RunRecord | null): void => {
    const change: LedgerChange = { revision: ++revision, op, runId: rec.runId, version: rec.version, run: op === 'delete' ? null : rec, previous }
    for (const l of listeners) {
      try { l(change) } catch { /* a listener's bug must not fail a write that already counts */ }
    }
  }
  // One mutation at a time: each writes its change and only then makes it the truth in memory, so a failed write
  // (disk full) leaves memory and disk as they were.
  let queue: Promise<unknown> = Promise.resolve()
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn, fn)
    queue = next.catch(() => {})
    return next
  }

  /** Write the snapshot of what memory holds, then empty the journal. Only ever inside serial(). */
  async function fold (): Promise<void> {
    await snapshot.write({ format: 1, runs: [...byId.values()], journalSeq: seq })
    await journal.reset()
  }
  let quiet: NodeJS.Timeout | null = null
  let closed = false
  const foldLater = (): void => {
    if (journal.lines >= FOLD_LINES || journal.size >= FOLD_BYTES) {
      // Not awaited by the change that filled it: the next change waits behind it instead, once in FOLD_LINES.
      void serial(fold).catch(() => {})
      return
    }
    if (quiet !== null) clearTimeout(quiet)
    quiet = setTimeout(() => {
      quiet = null
      // A fold that fails (a full disk) leaves the journal as it was: tried again after the next change.
      if (!closed && journal.lines > 0) void serial(fold).catch(() => {})
    }, FOLD_QUIET_MS)
    quiet.unref()
  }

  /** Make `change` durable (the journal, folded first if a failed append left it broken); then it counts. */
  async function commit (put: RunRecord[], del: string[], syncAlong?: () => Promise<void>): Promise<void> {
    if (journal.broken) await fold()
    const change: JournalChange = { seq: seq + 1, put, del }
    await journal.append(change, syncAlong)
    seq = change.seq
  }

  // A journal left by a crash (or a stop whose fold failed) is folded now, so that the snapshot is current; a first
  // start writes the empty snapshot, so that runs.json is there (0600) from the start, as SPEC.md lists it.
  if (journal.lines > 0 || raw === null) await fold().catch(() => {})

  return {
    get revision () { return revision },
    settle: async () => revision,
    onChange: (listener) => {
      listeners.add(listener)
      return () => { listeners.delete(listener) }
    },
    all: () => [...byId.values()],
    get: (runId) => byId.get(runId),
    insert: (run, o) => serial(async () => {
      if (byId.has(run.runId)) throw nfsError('NFS_ERR_CONFLICT', [`run ${run.runId} already exists`])
      // One process holds the file and writes one at a time: the count and the insert cannot be overtaken.
      if (o?.liveLimit !== undefined) {
        const live = liveRunsOf(byId.values(), run.uid)
        if (live >= o.liveLimit) throw limitReached(o.liveLimit, run.user, live)
      }
      const rec: RunRecord = { ...run, version: 1 }
      await commit([rec], [])
      byId.set(rec.runId, rec)
      emit('put', rec, null)
      foldLater()
      return rec
    }),
    update: (runId, expectedVersion, change, opts) => serial(async () => {
      const cur = byId.get(runId)
      if (cur === undefined) throw nfsError('NFS_ERR_RUN_NOT_FOUND', [runId])
      if (cur.version !== expectedVersion) throw nfsError('NFS_ERR_CONFLICT', [`run ${runId} changed (version ${cur.version}, expected ${expectedVersion})`])
      const changed = change(structuredClone(cur))
      if (changed === null) return cur
      const rec: RunRecord = { ...changed, runId, version: cur.version + 1 }
      if (opts?.decided !== undefined) {
        try { opts.decided(rec) } catch { /* its caller's bug must not fail the write */ }
        const held = failpointPause('ledger.decided-before-commit')
        if (held !== null) await held
      }
      await commit([rec], [], opts?.syncAlong)
      byId.set(runId, rec)
      emit('put', rec, cur)
      foldLater()
      return rec
    }),
    remove: (runIds) => serial(async () => {
      const gone = [...new Set(runIds)].filter(id => byId.has(id))
      if (gone.length === 0) return 0
      await commit([], gone)
      for (const id of gone) {
        const rec = byId.get(id)!
        byId.delete(id)
        emit('delete', rec, rec)
      }
      foldLater()
      return gone.length
    }),
    close: async () => {
      closed = true
      if (quiet !== null) clearTimeout(quiet)
      // Folded at a stop, so the next start reads one file; a fold that fails leaves the journal for the next start.
      await serial(async () => { if (journal.lines > 0) await fold().catch(() => {}) })
      await snapshot.flush()
      await journal.close()
    },
    ...(archive === null
      ? {}
      : {
          archive: {
            list: async () => await archive.list(),
            find: async (runId: string) => await archive.find(runId),
            summaries: async () => await archive.summaries(),
            prune: async (horizon: Date) => await archive.prune(horizon),
            move: (runIds: readonly string[], now: Date) => serial(async () => {
              const moving = runIds.map(id => byId.get(id)).filter((r): r is RunRecord => r !== undefined && isSettled(r))
              if (moving.length === 0) return 0
              // Records appended by a move whose removal from the hot set then failed (a full disk) are not appended
              // again: a removal that keeps failing must not grow the archive by the same runs at every pass.
              await archive.append(moving.filter(r => appended.get(r.runId) !== r), now)
              for (const r of moving) appended.set(r.runId, r)
              failpoint('ledger.after-archive')
              await commit([], moving.map(r => r.runId))
              for (const r of moving) {
                byId.delete(r.runId)
                appended.delete(r.runId)
              }
              foldLater()
              return moving.length
            })
          } satisfies LedgerArchive
        })
  }
}
