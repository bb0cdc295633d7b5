// The audit log: who did what to which secret, workspace or run, one JSON object a line, in the state dir.
// It never holds a value: the entry type has no field for one, and append() copies only the known fields
// (and only strings and numbers under `detail`), so a value smuggled in by a cast is dropped, not written.
// Each line goes out in one write(2) on an O_APPEND descriptor, so lines never interleave or tear, and is
// fsync'd before append() resolves: what the API answered is on disk. A line that does not fit (full disk) is cut
// off again, so the log never holds half a line. appendOrKeep() is for steps that must go ahead when the disk is
// full (a revoke): its line is kept in memory instead, and every later append writes the kept lines first, so the
// order on disk stays the order of the calls for every caller. appendUnsynced() writes its line the same way but
// leaves the fsync to sync(), which the caller awaits before it tells anyone: a run's line then shares the journal
// commit of the ledger write that follows it (issue 18), instead of a commit of its own.
import { constants, promises as fsp } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { isCoded, nfsError } from '../errors.js'

export interface AuditEntry {
  action: string
  actor: string
  scope?: string
  name?: string
  workspace?: string
  target?: string
  runId?: string
  detail?: Record<string, string | number>
}

export interface AuditLog {
  /** On disk (fsync'd) when it resolves, behind any kept lines; a storage error rejects with NFS_ERR_STORAGE. */
  append: (entry: AuditEntry) => Promise<void>
  /**
   * append, without the fsync: the line is written (one write(2), behind any kept lines) when it resolves, and is on
   * disk only once a sync() begun after that has resolved. Nothing may be acknowledged on its strength before then.
   */
  appendUnsynced: (entry: AuditEntry) => Promise<void>
  /** fsync every line written so far (at once when none waits); a storage error rejects with NFS_ERR_STORAGE. */
  sync: () => Promise<void>
  /** append, except that a storage error keeps the line in memory for a later write and resolves false. */
  appendOrKeep: (entry: AuditEntry) => Promise<boolean>
  /** lines kept in memory by appendOrKeep, not yet on disk */
  kept: () => number
  /** Write the kept lines; a storage error rejects and keeps them. */
  flushKept: () => Promise<void>
  close: () => Promise<void>
}

const OPTIONAL_FIELDS = ['scope', 'name', 'workspace', 'target', 'runId'] as const

/** The line written for an entry: known fields only, strings and finite numbers only. */
export function auditLine (entry: AuditEntry, at: Date): string {
  const out: Record<string, unknown> = { at: at.toISOString(), action: String(entry.action), actor: String(entry.actor) }
  for (const f of OPTIONAL_FIELDS) {
    const v = entry[f]
    if (typeof v === 'string') out[f] = v
  }
  if (typeof entry.detail === 'object' && entry.detail !== null) {
    const detail: Record<string, string | number> = {}
    for (const [k, v] of Object.entries(entry.detail)) {
      if (typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))) detail[k] = v
    }
    out.detail = detail
  }
  return JSON.stringify(out) + '\n'
}

function storageError (path: string, err: unknown): Error {
  return nfsError('NFS_ERR_STORAGE', [path, (err as { code?: string }).code ?? 'EIO'], err)
}

class FileAuditLog implements AuditLog {
  readonly #path: string
  readonly #now: () => Date
  #fh: FileHandle | null
  #chain: Promise<void> = Promise.resolve()
  // The length of the log: only this process appends (the daemon holds the state dir), so it is known.
  #size: number

  constructor (path: string, fh: FileHandle, now: () => Date, size: number) {
    this.#path = path
    this.#fh = fh
    this.#now = now
    this.#size = size
  }

  readonly #kept: Buffer[] = []
  // Lines written since the last fsync began, and the fsync in flight: sync() waits for one that covers them.
  #unsynced = false
  #syncing: Promise<void> | null = null

  /**
   * One line in one write(2), fsync'd unless `sync` is false; on failure the file is cut back to its length before
   * it. A line written unsynced is whole on the file (a later fsync of any caller covers it).
   */
  async #write (buf: Buffer, sync = true): Promise<void> {
    const fh = this.#fh
    if (fh === null) throw nfsError('NFS_ERR_STORAGE', [this.#path, 'the audit log is closed'])
    try {
      const { bytesWritten } = await fh.write(buf, 0, buf.length)
      if (bytesWritten !== buf.length) throw Object.assign(new Error('short write'), { code: 'ENOSPC' })
      // An fsync covers every line written before it, unsynced ones included.
      if (sync) await this.#fsync(fh)
      else this.#unsynced = true
      this.#size += buf.length
    } catch (err) {
      await fh.truncate(this.#size).catch(() => {})
      throw isCoded(err) ? err : storageError(this.#path, err)
    }
  }

  /** fsync now, known to sync() while in flight; a failure leaves the lines written so far unsynced. */
  #fsync (fh: FileHandle): Promise<void> {
    this.#unsynced = false
    const p = fh.sync().then(() => {}, (err: unknown) => {
      this.#unsynced = true
      throw storageError(this.#path, err)
    })
    this.#syncing = p
    const clear = (): void => { if (this.#syncing === p) this.#syncing = null }
    p.then(clear, clear)
    return p
  }

  async #drain (): Promise<void> {
    while (this.#kept.length > 0) {
      await this.#write(this.#kept[0]!)
      this.#kept.shift()
    }
  }

  // Serialised so the order on disk is the order of the calls and each fsync covers its own line.
  async #serial<T> (fn: () => Promise<T>): Promise<T> {
    const p = this.#chain.then(fn, fn)
    this.#chain = p.then(() => {}, () => {})
    return await p
  }

  async append (entry: AuditEntry): Promise<void> {
    const buf = Buffer.from(auditLine(entry, this.#now()), 'utf8')
    await this.#serial(async () => {
      await this.#drain()
      await this.#write(buf)
    })
  }

  async appendUnsynced (entry: AuditEntry): Promise<void> {
    const buf = Buffer.from(auditLine(entry, this.#now()), 'utf8')
    await this.#serial(async () => {
      await this.#drain()
      await this.#write(buf, false)
    })
  }

  // Not serialised behind appends: it is issued beside another file's fsync (the ledger's) to share its commit.
  async sync (): Promise<void> {
    for (;;) {
      if (this.#unsynced) {
        const fh = this.#fh
        if (fh === null) throw nfsError('NFS_ERR_STORAGE', [this.#path, 'the audit log is closed'])
        await this.#fsync(fh)
        return
      }
      // Nothing written since the last fsync began: the one in flight, if any, covers every line so far.
      const inFlight = this.#syncing
      if (inFlight === null) return
      try {
        await inFlight
        return
      } catch {
        // It failed and marked the lines unsynced again: fsync anew (or wait for whoever did).
      }
    }
  }

  async appendOrKeep (entry: AuditEntry): Promise<boolean> {
    // The line is dated now, when the action happened, whenever it reaches the disk.
    const buf = Buffer.from(auditLine(entry, this.#now()), 'utf8')
    return await this.#serial(async () => {
      try {
        await this.#drain()
        await this.#write(buf)
        return true
      } catch (err) {
        if (!isCoded(err, 'NFS_ERR_STORAGE') || this.#fh === null) throw err
        this.#kept.push(buf)
        return false
      }
    })
  }

  kept (): number {
    return this.#kept.length
  }

  async flushKept (): Promise<void> {
    await this.#serial(async () => { await this.#drain() })
  }

  async close (): Promise<void> {
    // A last try for kept lines; what still does not fit is lost with the process (the ledger keeps the facts).
    await this.flushKept().catch(() => {})
    await this.#chain
    await this.sync().catch(() => {})
    const fh = this.#fh
    this.#fh = null
    await fh?.close()
  }
}

/**
 * Open (creating 0600) the audit log for appending. O_NOFOLLOW: a symlink in its place is refused rather than
 * followed (and O_NONBLOCK, so a FIFO planted there fails instead of hanging). An existing log with a wider mode is narrowed to 0600; anything but a regular file is refused.
 */
export async function openAuditLog (path: string, opts: { now?: () => Date } = {}): Promise<AuditLog> {
  let fh: FileHandle
  let size: number
  try {
    fh = await fsp.open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600)
  } catch (err) {
    throw storageError(path, err)
  }
  try {
    const st = await fh.stat()
    if (!st.isFile()) throw nfsError('NFS_ERR_STORAGE', [path, 'not a regular file'])
    if ((st.mode & 0o777) !== 0o600) await fh.chmod(0o600)
    size = st.size
  } catch (err) {
    await fh.close()
    throw (err as { code?: string }).code?.startsWith('NFS_ERR_') === true ? err : storageError(path, err)
  }
  return new FileAuditLog(path, fh, opts.now ?? (() => new Date()), size)
}
