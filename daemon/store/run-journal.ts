// runs.journal: the run ledger's write-ahead log (issue 18, the arm's latency). A ledger change used to rewrite
// runs.json whole (temp file, fsync, rename, directory fsync): two fsyncs and a rename per change, two changes per arm,
// and each of them as long as the ledger. Now a change is one line appended here and one fdatasync; runs.json is a
// snapshot into which the lines are folded (run-ledger.ts: when the ledger goes quiet, when the journal grows, at start
// and at stop), after which this file is emptied.
//
// A line is `<crc32 of the JSON, 8 hex> <JSON>\n`, padded to whole pages (journalLine), the JSON
// `{"seq":N,"put":[records],"del":[run ids]}`: one line is one change, applied whole or not at all. The snapshot names
// the last seq folded into it, so lines that a crash left behind after a fold (before the journal was emptied) are not
// applied twice. A crash during an append leaves a last line without its newline (or a tail of zeros, or a last line
// whose sum does not match): it was never acknowledged, and the next open cuts it off, as the run archive does with a
// torn append. A bad line with good lines after it is damage, not a crash: the start stops (NFS_ERR_STORE_UNREADABLE,
// exit 78) and the file is left as it was.
import { constants, promises as fsp, type Stats } from 'node:fs'
import { crc32 } from 'node:zlib'
import { dirname } from 'node:path'
import { isCoded, nfsError } from '../errors.js'
import type { RunRecord } from '../types.js'
import { fsyncDir } from './atomic-file.js'

/** One change of the ledger: records put whole (insert or update) and run ids removed. */
export interface JournalChange {
  seq: number
  put: RunRecord[]
  del: string[]
}

const NL = 0x0a

function errnoCode (err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : 'EIO'
}

function sumOf (json: Buffer): string {
  return crc32(json).toString(16).padStart(8, '0')
}

/**
 * Lines are padded (spaces after the JSON, inside the sum) to a whole number of pages, so that every append takes new
 * pages of the disk. Unpadded, a change fitted in the slack of the last page on a full disk or not, by where the line
 * before had ended: a run's intent recorded and its end not, at random. Padded, on a full disk every change fails
 * alike and the revoke path's deferral (runs/deferred-records.ts) takes over at once. It costs no more at the fsync:
 * a disk writes whole blocks, a partial last page as much as a full one. The journal is folded by FOLD_BYTES anyway.
 */
const PAGE = 4096

/** The bytes of one journal line for `change`: `<sum> <JSON, padded>\n`, a multiple of PAGE long. */
export function journalLine (change: JournalChange): Buffer {
  const text = JSON.stringify(change)
  const bare = Buffer.byteLength(text, 'utf8') + 10
  const json = Buffer.from(text + ' '.repeat((PAGE - bare % PAGE) % PAGE), 'utf8')
  return Buffer.concat([Buffer.from(`${sumOf(json)} `), json, Buffer.from('\n')])
}

function validChange (raw: unknown): raw is JournalChange {
  const c = raw as Partial<JournalChange> | null
  if (c === null || typeof c !== 'object' || !Number.isSafeInteger(c.seq) || (c.seq as number) < 1) return false
  if (!Array.isArray(c.put) || !Array.isArray(c.del)) return false
  return c.put.every(r => typeof r?.runId === 'string' && typeof r.state === 'string' && typeof r.version === 'number' && typeof r.targets === 'object' && r.targets !== null) &&
    c.del.every(id => typeof id === 'string')
}

/** A line's change, or null when its sum, JSON or shape is wrong. */
function parseLine (line: Buffer): JournalChange | null {
  if (line.length < 10 || line[8] !== 0x20) return null
  const json = line.subarray(9)
  if (line.subarray(0, 8).toString('latin1') !== sumOf(json)) return null
  try {
    const change = JSON.parse(json.toString('utf8')) as unknown
    return validChange(change) ? change : null
  } catch {
    return null
  }
}

/**
 * A journal's bytes: its changes in order, and `good`, the length of the prefix they fill. A torn last line (no
 * newline, zeros, a wrong sum on the last line only) is left out of both; anything wrong before it, or seqs that do
 * not rise, is NFS_ERR_STORE_UNREADABLE naming `path`.
 */
export function parseJournal (bytes: Buffer, path: string): { changes: JournalChange[], good: number } {
  const changes: JournalChange[] = []
  let start = 0
  while (start < bytes.length) {
    const end = bytes.indexOf(NL, start)
    if (end < 0) break // the last line has no newline: a torn append
    const change = parseLine(bytes.subarray(start, end))
    if (change === null) {
      if (end + 1 >= bytes.length) break // the last line only: a torn append whose newline made it
      throw nfsError('NFS_ERR_STORE_UNREADABLE', [path, `line ${changes.length + 1} is damaged and lines follow it`])
    }
    const last = changes[changes.length - 1]
    if (last !== undefined && change.seq <= last.seq) throw nfsError('NFS_ERR_STORE_UNREADABLE', [path, `line ${changes.length + 1} does not follow the one before (seq ${change.seq} after ${last.seq})`])
    changes.push(change)
    start = end + 1
  }
  return { changes, good: start }
}

/** Apply the changes whose seq is above `after` to `byId`, in order; the last seq applied (`after` when none). */
export function applyJournal (byId: Map<string, RunRecord>, changes: readonly JournalChange[], after: number): number {
  let seq = after
  for (const c of changes) {
    if (c.seq <= after) continue
    for (const id of c.del) byId.delete(id)
    for (const r of c.put) byId.set(r.runId, r)
    seq = c.seq
  }
  return seq
}

/** The journal file of a running ledger: one writer (the ledger's queue), appends and resets. */
export class RunJournal {
  readonly path: string
  readonly #fh: fsp.FileHandle
  #size: number
  #lines: number
  #broken = false

  private constructor (path: string, fh: fsp.FileHandle, size: number, lines: number) {
    this.path = path
    this.#fh = fh
    this.#size = size
    this.#lines = lines
  }

  /**
   * Open (or create, 0600) the journal at `path` and read it: its changes, with a torn last line cut off. Never
   * follows a symlink; anything but the daemon's own regular file is NFS_ERR_STORE_UNREADABLE.
   */
  static async open (path: string): Promise<{ journal: RunJournal, changes: JournalChange[] }> {
    let fh: fsp.FileHandle
    const flags = constants.O_RDWR | constants.O_APPEND | constants.O_NOFOLLOW
    try {
      try {
        fh = await fsp.open(path, flags)
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err
        fh = await fsp.open(path, flags | constants.O_CREAT | constants.O_EXCL, 0o600)
        await fh.chmod(0o600)
        await fsyncDir(dirname(path))
      }
    } catch (err) {
      throw nfsError('NFS_ERR_STORE_UNREADABLE', [path, errnoCode(err)], err)
    }
    try {
      const st: Stats = await fh.stat()
      if (!st.isFile() || st.uid !== process.getuid?.() || (st.mode & 0o077) !== 0) {
        throw nfsError('NFS_ERR_STORE_UNREADABLE', [path, 'not the daemon\'s own 0600 file'])
      }
      const bytes = await fh.readFile()
      const { changes, good } = parseJournal(bytes, path)
      if (good < bytes.length) {
        await fh.truncate(good)
        await fh.datasync()
      }
      return { journal: new RunJournal(path, fh, good, changes.length), changes }
    } catch (err) {
      await fh.close().catch(() => {})
      if (isCoded(err)) throw err
      throw nfsError('NFS_ERR_STORE_UNREADABLE', [path, errnoCode(err)], err)
    }
  }

  /** lines appended since the journal was last emptied */
  get lines (): number { return this.#lines }
  get size (): number { return this.#size }
  /** an append failed and its bytes could not be cut off: nothing more may be appended until reset() succeeds */
  get broken (): boolean { return this.#broken }

  /**
   * Append `change` durably: written, then fdatasync'd beside `syncAlong` (another file's fsync, so both share a
   * journal commit of the filesystem). On failure (NFS_ERR_STORAGE) the bytes written are cut off again, so the file
   * holds only acknowledged changes; if even that fails the journal is `broken`.
   */
  async append (change: JournalChange, syncAlong?: () => Promise<void>): Promise<void> {
    if (this.#broken) throw nfsError('NFS_ERR_STORAGE', [this.path, 'EIO'])
    const line = journalLine(change)
    try {
      let off = 0
      while (off < line.length) off += (await this.#fh.write(line, off, line.length - off)).bytesWritten
      await Promise.all([this.#fh.datasync(), syncAlong?.().catch(() => {})])
    } catch (err) {
      await this.#fh.truncate(this.#size).catch(() => { this.#broken = true })
      throw nfsError('NFS_ERR_STORAGE', [this.path, errnoCode(err)], err)
    }
    this.#size += line.length
    this.#lines++
  }

  /**
   * Empty the journal: its changes are in the snapshot now. Not made durable on its own: lines that come back after a
   * crash are at or below the snapshot's seq and are skipped, and the next append's fdatasync carries the new size.
   */
  async reset (): Promise<void> {
    try {
      await this.#fh.truncate(0)
    } catch (err) {
      throw nfsError('NFS_ERR_STORAGE', [this.path, errnoCode(err)], err)
    }
    this.#size = 0
    this.#lines = 0
    this.#broken = false
  }

  async close (): Promise<void> {
    await this.#fh.close().catch(() => {})
  }
}
