// Reading `.nextflow/history` with bounded memory, whatever a user writes into it. The file is the user's: its size,
// its line lengths and how often it is rewritten are theirs to choose. So:
// - the watcher reads only its tail (HISTORY_TAIL bytes) and keeps only the last MAX_RECORDS records of that;
// - the run monitor, which needs a record's position in the whole file (a run's history mark), streams the file in
//   chunks and keeps only the records it asked for; from a checkpoint near the end when one holds
//   (history-checkpoints.ts), so a long history costs its last lines, not its length;
// - a line longer than MAX_LINE (no real one is: the command column is a command line) is ignored whole;
// - every string kept is a copy: a V8 substring pins the whole text it was cut from (the OOM of issue 13).
// The line format itself is history.ts's (parseHistoryLine), untouched here.
import { constants, promises as fsp, type Stats } from 'node:fs'
import { join } from 'node:path'
import { parseHistory, parseHistoryLine, type HistoryRecord, type ParsedHistory } from './history.js'
import { atFd, dirWritableByOthers, openDir, readOwnedAt, writableByOthers } from '../os/read-owned.js'
import { CACHE_DIR, HISTORY } from './file-names.js'
import { CHECKPOINT_LAG, CHECKPOINT_RECORDS_MAX, GUARD_BYTES, GUARD_MIN, NameFilter, nameHashes, type Checkpoint, type Checkpoints } from './history-checkpoints.js'

/** Bytes of a history the watcher reads: its end, where new lines and rewritten statuses are. */
export const HISTORY_TAIL = 64 * 1024
/** A longer line is not Nextflow's (the longest column is the command line) and is skipped. */
export const MAX_LINE = 16 * 1024
/** Records of one read the watcher compares with the last: a new start is always among the last lines. */
export const MAX_RECORDS = 256
/** Largest history the monitor streams through (far above any real one); a larger file is read as far as this. */
export const HISTORY_SCAN_MAX = 64 * 1024 * 1024

/** A string that shares no memory with the text it was cut from. */
export function own (s: string): string {
  return s.length < 13 ? s : Buffer.from(s, 'utf8').toString('utf8')
}

/** A record whose strings are all copies (see own). */
export function ownRecord (r: HistoryRecord): HistoryRecord {
  return {
    index: r.index,
    timestamp: own(r.timestamp),
    duration: r.duration === null ? null : own(r.duration),
    runName: own(r.runName),
    status: r.status,
    revisionId: own(r.revisionId),
    sessionId: own(r.sessionId),
    command: own(r.command.length > 1024 ? r.command.slice(0, 1024) : r.command)
  }
}

/**
 * The records of a tail read: the first line is dropped when the read began mid-file (it may be cut), lines over
 * MAX_LINE are dropped, and only the last MAX_RECORDS records are kept (indexes count within what is kept). Pure.
 */
export function historyWindow (text: string, skipped: number): ParsedHistory {
  let lines = text.split('\n')
  if (skipped > 0) lines = lines.slice(1)
  const kept = lines.filter((l, i) => l.length <= MAX_LINE || i === lines.length - 1)
  const last = kept.at(-1) ?? ''
  // An unterminated last line over the limit is not a write caught half-way: it is dropped too.
  if (last.length > MAX_LINE) kept[kept.length - 1] = ''
  const parsed = parseHistory(kept.join('\n'))
  const records = parsed.records.slice(-MAX_RECORDS).map((r, index) => ({ ...r, index }))
  return { records, partial: parsed.partial }
}

export interface HistoryTail extends ParsedHistory {
  mtimeMs: number
  /** no one but the user (and root) could have written it (read-owned.ts) */
  trusted: boolean
}

/** The tail of a launch dir's history, through a `.nextflow` held open; null when absent or not the user's. */
export async function readHistoryTail (launchDir: string, uid: number): Promise<HistoryTail | null> {
  return await tailIn(await openDir(join(launchDir, CACHE_DIR)), uid)
}

/** readHistoryTail in a launch dir held open (the watcher's: reached by fd from its root, watch/held-root.ts). */
export async function readHistoryTailIn (launchDir: fsp.FileHandle, uid: number): Promise<HistoryTail | null> {
  let dir: fsp.FileHandle | null
  try {
    dir = await fsp.open(atFd(launchDir, CACHE_DIR), constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW)
  } catch {
    dir = null
  }
  return await tailIn(dir, uid)
}

async function tailIn (dir: fsp.FileHandle | null, uid: number): Promise<HistoryTail | null> {
  if (dir === null) return null
  try {
    const got = await readOwnedAt(dir, HISTORY, uid, { head: 0, tail: HISTORY_TAIL, dirOwned: true })
    if (got === null) return null
    return { ...historyWindow(got.text, got.skipped), mtimeMs: got.mtimeMs, trusted: got.trusted }
  } finally {
    await dir.close()
  }
}

export interface HistoryScan {
  /** valid records in the file (lines over MAX_LINE and invalid lines are not counted, as they are not indexed) */
  count: number
  trusted: boolean
}

/** What a scan was not given to visit: the records before a checkpoint (history-checkpoints.ts). */
export interface SkippedPart {
  /** records there (the index of the first record visited) */
  count: number
  /** might a record there have this runName or sessionId? (false: surely none has) */
  mayHold: (name: string) => boolean
}

export interface HistoryVisitor {
  visit: (r: HistoryRecord) => void
  /**
   * After a scan that began at a checkpoint: is what was visited enough, given what was skipped? When it is not (or
   * when this is absent), the file is read whole with a fresh visitor.
   */
  enough?: (skipped: SkippedPart) => boolean
}

const CHUNK = 64 * 1024
// A line longer than MAX_LINE UTF-16 units is dropped; UTF-8 takes at most 3 bytes a unit (an invalid byte decodes to
// one U+FFFD), so a line past this many bytes is surely over it, and what was gathered of it can go.
const MAX_LINE_BYTES = 3 * MAX_LINE
const NO_BYTES = Buffer.alloc(0)

interface Pass {
  /** records before the first byte read */
  count: number
  /** the first line start at or after this becomes the next checkpoint (-1: none) */
  target: number
  /** the new checkpoint, once its line was reached */
  at: { offset: number, count: number, guard: Buffer } | null
  /** nameHashes of the records read before `at`, in pairs */
  hashes: number[]
}

/**
 * Read records from `from` (a line start, with `pass.count` records before it) to `end`, calling `visit` with each
 * valid one and its position among the file's valid records. Lines are cut at the byte 10 (never inside a UTF-8
 * sequence), so every line start's offset is known: the next checkpoint is taken at one. Memory: one chunk, one line
 * and, while a checkpoint is to be taken, two hashes a name before it (CHECKPOINT_RECORDS_MAX at most).
 */
async function readRecords (fh: fsp.FileHandle, from: number, end: number, visit: (r: HistoryRecord) => void, pass: Pass): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.max(1, Math.min(CHUNK, end - from)))
  let carry = NO_BYTES
  let skipping = false
  const line = (data: Buffer, start: number, stop: number): void => {
    const text = data.toString('utf8', start, stop)
    if (text.length > MAX_LINE) return
    const rec = parseHistoryLine(text)
    if (rec === null) return
    if (pass.at === null && pass.target >= 0) {
      // Bounded: past CHECKPOINT_RECORDS_MAX this scan takes no checkpoint (and gathers nothing more for one).
      if (pass.hashes.length >= 4 * CHECKPOINT_RECORDS_MAX) {
        pass.target = -1
        pass.hashes = []
      } else {
        pass.hashes.push(...nameHashes(rec.runName), ...nameHashes(rec.sessionId))
      }
    }
    visit({ index: pass.count++, ...rec })
  }
  for (let pos = from; pos < end;) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - pos), pos)
    if (bytesRead === 0) break
    const data = carry.length === 0 ? buf.subarray(0, bytesRead) : Buffer.concat([carry, buf.subarray(0, bytesRead)])
    const dataStart = pos - carry.length
    pos += bytesRead
    let start = 0
    for (let nl = data.indexOf(10); nl !== -1; nl = data.indexOf(10, start)) {
      if (!skipping) line(data, start, nl)
      skipping = false
      start = nl + 1
      // The line starting here may be the next checkpoint: the bytes before it, all in `data`, are its guard.
      if (pass.at === null && pass.target >= 0 && dataStart + start >= pass.target && start >= GUARD_MIN) {
        pass.at = { offset: dataStart + start, count: pass.count, guard: Buffer.from(data.subarray(Math.max(0, start - GUARD_BYTES), start)) }
      }
    }
    // A copy: `buf` is read into again.
    carry = start < data.length ? Buffer.from(data.subarray(start)) : NO_BYTES
    // A line growing past the limit is dropped whole, however long it goes on.
    if (carry.length > MAX_LINE_BYTES) { carry = NO_BYTES; skipping = true }
  }
  // An unterminated last line with all its columns counts, as parseHistory takes it.
  if (!skipping && carry.length > 0) line(carry, 0, carry.length)
}

async function sameBytes (fh: fsp.FileHandle, want: Buffer, at: number): Promise<boolean> {
  if (at < 0) return false
  const got = Buffer.allocUnsafe(want.length)
  const { bytesRead } = await fh.read(got, 0, want.length, at)
  return bytesRead === want.length && got.equals(want)
}

/**
 * Stream a launch dir's history (up to HISTORY_SCAN_MAX) through a `.nextflow` held open, calling the visitor with
 * each record and its position among the file's valid records. The visitor copies what it keeps (ownRecord).
 * Memory: that of readRecords. null when absent or not the user's.
 *
 * A history only its user could write is read from its checkpoint (history-checkpoints.ts) when one holds: the
 * same file, the guard's bytes unchanged; the visitor's `enough` then says whether the records not read matter to
 * it, and if they might, the file is read whole with a fresh visitor (`start` is called again). A scan that reads
 * past CHECKPOINT_LAG before the end leaves a checkpoint there, when the file did not change under it.
 */
export async function scanHistory (launchDir: string, uid: number, start: () => HistoryVisitor, checkpoints: Checkpoints): Promise<HistoryScan | null> {
  const dir = await openDir(join(launchDir, CACHE_DIR))
  if (dir === null) return null
  let fh
  try {
    const ds = await dir.stat()
    if (!ds.isDirectory() || (ds.uid !== uid && ds.uid !== 0)) return null
    fh = await fsp.open(atFd(dir, HISTORY), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
    const st = await fh.stat()
    if (!st.isFile() || (st.uid !== uid && st.uid !== 0)) return null
    const trusted = !dirWritableByOthers(ds, uid) && !writableByOthers(st, uid) && st.nlink === 1
    const end = Math.min(st.size, HISTORY_SCAN_MAX)
    const key = `${uid}\0${launchDir}`
    let cp = trusted ? checkpoints.get(key) : undefined
    if (cp !== undefined && !(cp.dev === st.dev && cp.ino === st.ino && cp.offset <= end && await sameBytes(fh, cp.guard, cp.offset - cp.guard.length))) {
      checkpoints.delete(key)
      cp = undefined
    }
    // The checkpoint moves once it is 2 lags behind (each move copies its filter); a first one is taken past 1 lag.
    const targetFrom = (cp?.offset ?? 0) + (cp === undefined ? CHECKPOINT_LAG : 2 * CHECKPOINT_LAG) <= end ? end - CHECKPOINT_LAG : -1
    let pass: Pass | null = null
    if (cp !== undefined) {
      const visitor = start()
      const p: Pass = { count: cp.count, target: trusted ? targetFrom : -1, at: null, hashes: [] }
      await readRecords(fh, cp.offset, end, visitor.visit, p)
      const skipped = cp.names
      if (visitor.enough?.({ count: cp.count, mayHold: n => skipped.mayHold(n) }) === true) pass = p
    }
    if (pass === null) {
      cp = undefined
      pass = { count: 0, target: trusted && end > CHECKPOINT_LAG ? end - CHECKPOINT_LAG : -1, at: null, hashes: [] }
      await readRecords(fh, 0, end, start().visit, pass)
    }
    if (pass.at !== null) await keep(fh, st, key, cp, pass.at, pass.hashes, checkpoints)
    return { count: pass.count, trusted }
  } catch {
    return null
  } finally {
    // Together: each close is a round trip through the thread pool, and an arm waits for this scan (issue 18).
    await Promise.all([fh?.close(), dir.close()])
  }
}

/**
 * Keep the checkpoint a scan reached, unless the file changed while it was read (a rewrite caught half-way would
 * leave a count that does not match the bytes). From a checkpoint, its filter is copied and the records read before
 * the new one added; a filter that would pass its capacity is dropped instead (the next scan reads whole and sizes one
 * anew).
 */
async function keep (fh: fsp.FileHandle, before: Stats, key: string, from: Checkpoint | undefined, at: NonNullable<Pass['at']>, hashes: number[], checkpoints: Checkpoints): Promise<void> {
  const now = await fh.stat()
  if (now.size !== before.size || now.mtimeMs !== before.mtimeMs || now.ctimeMs !== before.ctimeMs) return
  let names: NameFilter
  if (from !== undefined) {
    names = from.names.clone()
    if (!names.addHashes(hashes)) {
      checkpoints.delete(key)
      return
    }
  } else {
    const found = hashes.length / 2
    names = new NameFilter(Math.ceil(found * 1.5) + 1024)
    names.addHashes(hashes)
  }
  checkpoints.set(key, { dev: before.dev, ino: before.ino, offset: at.offset, count: at.count, guard: at.guard, names })
}
