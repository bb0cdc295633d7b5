// Durable, atomic file writes for everything the daemon keeps in its state dir (store, ledger, key).
// A reader, a crash or a full disk only ever sees the old file or the new one: the bytes go to a temp file
// in the same directory (same filesystem, so rename is atomic), are fsync'd, renamed over the target, and the
// directory is fsync'd so the rename itself survives a power cut.
import { constants, promises as fsp } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { basename, dirname, join } from 'node:path'
import type { Adapter } from 'lowdb'
import { isCoded, nfsError } from '../errors.js'

const TEMP_SUFFIX = '.tmp'

export interface AtomicFileOptions {
  /** file mode of the result, applied exactly (not filtered by the umask) */
  mode: number
  /** the file's bytes for `data`; JSON.stringify plus a newline when absent */
  serialize?: (data: never) => string | Buffer
}

export interface WriteFileAtomicOptions {
  /** refuse to replace an existing file: the final step is link(2), which fails with EEXIST */
  noClobber?: boolean
  /**
   * Another file's fsync, issued beside this file's data fsync so that both share one journal commit (a run's audit
   * line and its ledger record: issue 18). Its outcome is not this write's: a failure is for its caller to see again.
   */
  syncAlong?: () => Promise<void>
}

function errnoCode (err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : 'EIO'
}

/** Temp names carry the writer's pid so a later start can tell a crashed writer's leftovers from a live one's. */
function tempPath (target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}${TEMP_SUFFIX}`)
}

export async function fsyncDir (dir: string): Promise<void> {
  const fh = await fsp.open(dir, constants.O_RDONLY | constants.O_DIRECTORY)
  try {
    await fh.sync()
  } catch (err) {
    // Some filesystems (and FUSE mounts) refuse fsync on a directory; the rename is then as durable as they allow.
    if (errnoCode(err) !== 'EINVAL') throw err
  } finally {
    await fh.close()
  }
}

/**
 * Write `data` to `path` atomically and durably with exactly `mode`. On any failure the old file is left as it
 * was, no temp file stays behind, and the error is NFS_ERR_STORAGE naming the file and the errno code.
 *
 * Every step is a round trip through libuv's thread pool, and on a loaded machine each costs a wake-up as much as
 * the syscall (issue 18: the arm makes two of these writes). So the steps that do not depend on each other go out
 * together: the mode is set beside the write, the temp file closed beside the rename: seven round trips, not nine.
 * The directory is opened only once the temp file is closed, and closed before this resolves: the write never holds
 * more than one descriptor, so with the fd table nearly full (test/e2e/emfile.test.ts) it needs one free fd, not two.
 * The order that durability needs (data fsync'd before the rename, the rename before the directory's fsync) is as ever.
 */
export async function writeFileAtomic (path: string, data: string | Buffer, mode: number, opts: WriteFileAtomicOptions = {}): Promise<void> {
  const tmp = tempPath(path)
  let created = false
  try {
    // O_EXCL|O_NOFOLLOW: never write through a file or symlink someone planted under our temp name.
    const fh = await fsp.open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode)
    created = true
    let closed: Promise<void> | null = null
    try {
      const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
      // The mode exactly (open's is narrowed by the umask), set beside the first write.
      const [, first] = await Promise.all([fh.chmod(mode), fh.write(buf, 0, buf.length)])
      let off = first.bytesWritten
      while (off < buf.length) {
        const { bytesWritten } = await fh.write(buf, off, buf.length - off)
        off += bytesWritten
      }
      await Promise.all([fh.sync(), opts.syncAlong?.().catch(() => {})])
      closed = fh.close()
      // Awaited in `finally`; handled here so that a failed close is not an unhandled rejection meanwhile.
      closed.catch(() => {})
      if (opts.noClobber === true) {
        await fsp.link(tmp, path)
        await fsp.unlink(tmp)
      } else {
        await fsp.rename(tmp, path)
      }
      created = false
    } finally {
      await (closed ?? fh.close())
    }
    // If only this fsync fails (EIO), the new content is already in place but may not survive a power cut; the
    // caller hears NFS_ERR_STORAGE and must treat the write as not durable.
    await fsyncDir(dirname(path))
  } catch (err) {
    if (created) await fsp.unlink(tmp).catch(() => {})
    if (isCoded(err)) throw err
    throw nfsError('NFS_ERR_STORAGE', [path, errnoCode(err)], err)
  }
}

/**
 * Remove temp files a crashed writer left next to `path`. Only files whose pid is no longer alive are removed,
 * so a second process writing the same file (which the daemon does not do, but a test might) is not disturbed.
 */
export async function sweepTempFiles (path: string): Promise<string[]> {
  const dir = dirname(path)
  const prefix = `.${basename(path)}.`
  const removed: string[] = []
  let names: string[]
  try {
    names = await fsp.readdir(dir)
  } catch {
    return removed
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith(TEMP_SUFFIX)) continue
    const pid = Number(name.slice(prefix.length).split('.')[0])
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || isAlive(pid)) continue
    await fsp.unlink(join(dir, name)).then(() => removed.push(name), () => {})
  }
  return removed
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return errnoCode(err) === 'EPERM'
  }
}

/** Read and parse a JSON file: null when missing, NFS_ERR_STORE_UNREADABLE when unreadable or not JSON. */
export async function readJsonFile<T> (path: string): Promise<T | null> {
  return (await readJsonFileText<T>(path))?.value ?? null
}

/** readJsonFile, with the text it was parsed from (for a second reader of exactly the same bytes). */
export async function readJsonFileText<T> (path: string): Promise<{ value: T, text: string } | null> {
  const bytes = await readFileBytes(path)
  if (bytes === null) return null
  const text = bytes.toString('utf8')
  return { value: parseJsonText<T>(text, path), text }
}

/** A state file's bytes: null when missing, NFS_ERR_STORE_UNREADABLE naming it when it cannot be read. */
export async function readFileBytes (path: string): Promise<Buffer | null> {
  try {
    return await fsp.readFile(path)
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null
    throw nfsError('NFS_ERR_STORE_UNREADABLE', [path, errnoCode(err)], err)
  }
}

/** JSON.parse, NFS_ERR_STORE_UNREADABLE naming `path` when the text is not JSON. */
export function parseJsonText<T> (text: string, path: string): T {
  try {
    return JSON.parse(text) as T
  } catch (err) {
    throw nfsError('NFS_ERR_STORE_UNREADABLE', [path, 'not valid JSON'], err)
  }
}

interface Waiter { resolve: () => void, reject: (err: unknown) => void }

/**
 * lowdb 7 adapter over writeFileAtomic. One write is in flight at a time; callers that arrive meanwhile are
 * coalesced: when the write in flight ends, only the newest data is written, and every one of them settles with
 * that write. This keeps a busy ledger at one fsync per burst instead of one per change.
 * The data is serialised when its write starts, so a caller that keeps mutating the same object gets its
 * latest state written.
 */
export class AtomicJsonFile<T> implements Adapter<T> {
  readonly path: string
  readonly #mode: number
  readonly #serialize: (data: T) => string | Buffer
  #inFlight: Promise<void> | null = null
  #pending: { data: T, waiters: Waiter[], along: Array<() => Promise<void>> } | null = null

  constructor (path: string, opts: AtomicFileOptions = { mode: 0o600 }) {
    this.path = path
    this.#mode = opts.mode
    this.#serialize = (opts.serialize as ((data: T) => string | Buffer) | undefined) ?? (data => JSON.stringify(data) + '\n')
  }

  async read (): Promise<T | null> {
    return await readJsonFile<T>(this.path)
  }

  /** `syncAlong`: see WriteFileAtomicOptions; issued beside the data fsync of the write that carries `data`. */
  async write (data: T, syncAlong?: () => Promise<void>): Promise<void> {
    return await new Promise<void>((resolve, reject) => {
      if (this.#pending === null) this.#pending = { data, waiters: [], along: [] }
      this.#pending.data = data
      this.#pending.waiters.push({ resolve, reject })
      if (syncAlong !== undefined) this.#pending.along.push(syncAlong)
      if (this.#inFlight === null) this.#drain()
    })
  }

  /** Resolves when no write is in flight or pending. */
  async flush (): Promise<void> {
    while (this.#inFlight !== null) await this.#inFlight.catch(() => {})
  }

  #drain (): void {
    const batch = this.#pending
    if (batch === null) return
    this.#pending = null
    this.#inFlight = (async () => {
      try {
        const along = batch.along
        await writeFileAtomic(this.path, this.#serialize(batch.data), this.#mode, along.length === 0 ? {} : { syncAlong: async () => { await Promise.all(along.map(f => f())) } })
        for (const w of batch.waiters) w.resolve()
      } catch (err) {
        for (const w of batch.waiters) w.reject(err)
      } finally {
        this.#inFlight = null
        this.#drain()
      }
    })()
  }
}
