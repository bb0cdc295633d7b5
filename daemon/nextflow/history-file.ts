// Reading `.nextflow/history` with bounded memory, whatever a user writes into it. The file is the user's: its size,
// its line lengths and how often it is rewritten are theirs to choose. So:
// - the watcher reads only its tail (HISTORY_TAIL bytes) and keeps only the last MAX_RECORDS records of that;
// - the run monitor, which needs a record's position in the whole file (a run's history mark), streams the file in
//   chunks and keeps only the records it asked for;
// - a line longer than MAX_LINE (no real one is: the command column is a command line) is ignored whole;
// - every string kept is a copy: a V8 substring pins the whole text it was cut from (the OOM of issue 13).
// The line format itself is history.ts's (parseHistoryLine), untouched here.
import { constants, promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { StringDecoder } from 'node:string_decoder'
import { parseHistory, parseHistoryLine, type HistoryRecord, type ParsedHistory } from './history.js'
import { atFd, dirWritableByOthers, openDir, readOwnedAt, writableByOthers } from '../os/read-owned.js'
import { CACHE_DIR, HISTORY } from './file-names.js'

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

/**
 * Stream a launch dir's whole history (up to HISTORY_SCAN_MAX) through a `.nextflow` held open, calling `visit` with
 * each record and its position among the file's valid records. The visitor copies what it keeps (ownRecord).
 * Memory: one chunk and one line. null when absent or not the user's.
 */
export async function scanHistory (launchDir: string, uid: number, visit: (r: HistoryRecord) => void): Promise<HistoryScan | null> {
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
    let count = 0
    let carry = ''
    let skipping = false
    // Only the bytes read are used: no need to zero it, nor to make it larger than the file.
    const buf = Buffer.allocUnsafe(Math.max(1, Math.min(64 * 1024, st.size)))
    const utf8 = new StringDecoder('utf8')
    const line = (l: string): void => {
      const rec = parseHistoryLine(l)
      if (rec !== null) visit({ index: count++, ...rec })
    }
    for (let pos = 0; pos < Math.min(st.size, HISTORY_SCAN_MAX);) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos)
      if (bytesRead === 0) break
      pos += bytesRead
      const parts = (carry + utf8.write(buf.subarray(0, bytesRead))).split('\n')
      carry = parts.pop() ?? ''
      for (const p of parts) {
        if (!skipping && p.length <= MAX_LINE) line(p)
        skipping = false
      }
      // A line growing past the limit is dropped whole, however long it goes on.
      if (carry.length > MAX_LINE) { carry = ''; skipping = true }
    }
    // An unterminated last line with all its columns counts, as parseHistory takes it.
    if (!skipping && carry !== '') line(carry)
    return { count, trusted }
  } catch {
    return null
  } finally {
    // Together: each close is a round trip through the thread pool, and an arm waits for this scan (issue 18).
    await Promise.all([fh?.close(), dir.close()])
  }
}
