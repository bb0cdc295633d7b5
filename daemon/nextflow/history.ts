// Parser of Nextflow's `.nextflow/history` (HistoryFile.groovy) and a differ between two reads of it.
// Pure: the watcher reads the file and hands the text in. Nextflow rewrites the whole file in place
// (truncate and write, not a rename) when a run ends, so a read may catch it empty or cut mid-line; the
// caller re-reads on the next event, and `partial` says a re-read is due.
//
// The timestamp is HistoryFile's `new SimpleDateFormat('yyyy-MM-dd HH:mm:ss')` in the JVM's default locale and
// zone: the locale's digits (Arabic `٢٠٢٦-…`, Persian `۲۰۲۶-…`, Bengali, Devanagari, Burmese, Thai with `-u-nu-thai`)
// and calendar (Buddhist `2569-…` in th-TH, Japanese era `8-…` in ja-JP-u-ca-japanese), and no zone at all. It is
// read with any script's digits and kept as text (digits made ASCII) for display only: it is never compared with
// a clock. Whether a line is a new start is told by the file's mtime (isLeftover). Fixtures:
// test/fixtures/nextflow-locales (the JDK's own output for 80 locales and 17 zones).

export type HistoryStatus = 'running' | 'OK' | 'ERR'

export interface HistoryRecord {
  /** 0-based position among the valid records of this read (not the raw line number) */
  index: number
  /**
   * `yyyy-MM-dd HH:mm:ss` as the launching JVM wrote it, digits made ASCII: its local time in its calendar, no
   * zone. For display only; never compare it with a clock (see isLeftover).
   */
  timestamp: string
  /** Nextflow's Duration text (`41.3s`, `2m 14s`), null while `-` */
  duration: string | null
  runName: string
  status: HistoryStatus
  revisionId: string
  /** shared by a run and each of its `-resume`s */
  sessionId: string
  command: string
}

export interface ParsedHistory {
  records: HistoryRecord[]
  /** the last line had no newline and too few columns: a write or rewrite was caught half-way */
  partial: boolean
}

export interface HistoryDiff {
  /** runNames not seen before (running, or already terminal when the start was missed) */
  started: HistoryRecord[]
  /** runNames that reached OK/ERR since `prev`, including new lines that are already terminal */
  ended: HistoryRecord[]
}

const COLUMNS = 7
// Any script's decimal digits; the year may be an era's (Japanese: 1 or 2 digits) or the Buddhist one.
const TIMESTAMP_RE = /^\p{Nd}{1,6}-\p{Nd}{2}-\p{Nd}{2} \p{Nd}{2}:\p{Nd}{2}:\p{Nd}{2}$/u
// The same in ASCII digits (most locales): tried first, as the Unicode one costs several times more a line, and the
// run monitor parses every line of a history (issue 18: 10,000 lines were 29 ms, half of it the digits).
const ASCII_TIMESTAMP_RE = /^[0-9]{1,6}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}$/
const NON_ASCII_RE = /\P{ASCII}/u
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
// CmdRun.RUN_NAME_PATTERN, case-insensitive; generated names use `_`
const RUN_NAME_RE = /^[a-z](?:[a-z\d]|[-_](?=[a-z\d])){0,79}$/i

/**
 * Every Unicode decimal digit as its ASCII digit. Unicode keeps each script's digits as runs of ten consecutive
 * code points from its zero (some blocks sit back to back, hence the modulo). Pure.
 */
export function asciiDigits (text: string): string {
  if (!NON_ASCII_RE.test(text)) return text
  return text.replace(/\p{Nd}/gu, (d) => {
    const cp = d.codePointAt(0)!
    let start = cp
    while (start > 0 && /\p{Nd}/u.test(String.fromCodePoint(start - 1))) start--
    return String((cp - start) % 10)
  })
}

/**
 * Nextflow appends a start's line, so a genuine new start leaves the history freshly written. A line first seen
 * in a file last written longer ago than this (a tree moved in with `mv`, a run killed long ago) is a leftover.
 * File times are absolute (the kernel's, or the NFS server's clock), unlike the line's own zone-less time; the
 * margin also absorbs clock skew between the daemon's host and a file server.
 */
export const LEFTOVER_MS = 10 * 60_000

/** Is a history line first seen at `nowMs` a leftover rather than a start? By the file's mtime only. Pure. */
export function isLeftover (historyMtimeMs: number, nowMs: number): boolean {
  return nowMs - historyMtimeMs > LEFTOVER_MS
}

/**
 * Nextflow splits with Groovy's `tokenize('\t')`, which drops empty tokens; a line with an empty column
 * therefore has fewer than 7 tokens and is skipped, as Nextflow itself does.
 */
export function parseHistoryLine (line: string): Omit<HistoryRecord, 'index'> | null {
  const cols = (line.endsWith('\r') ? line.slice(0, -1) : line).split('\t').filter((c) => c !== '')
  if (cols.length !== COLUMNS) return null
  const [timestamp, duration, runName, status, revisionId, sessionId, command] = cols as [
    string, string, string, string, string, string, string]
  if (!ASCII_TIMESTAMP_RE.test(timestamp) && !TIMESTAMP_RE.test(timestamp)) return null
  if (!RUN_NAME_RE.test(runName)) return null
  if (!UUID_RE.test(sessionId)) return null
  let parsedStatus: HistoryStatus
  if (status === '-') parsedStatus = 'running'
  else if (status === 'OK' || status === 'ERR') parsedStatus = status
  else return null
  return {
    timestamp: asciiDigits(timestamp),
    duration: duration === '-' ? null : duration,
    runName,
    status: parsedStatus,
    revisionId,
    sessionId: sessionId.toLowerCase(),
    command
  }
}

export function parseHistory (text: string): ParsedHistory {
  const lines = text.split('\n')
  // split() leaves '' after a final newline; anything else there is an unterminated last line
  const tail = lines.pop() ?? ''
  let partial = false
  if (tail !== '') {
    const cols = tail.split('\t').filter((c) => c !== '')
    if (cols.length < COLUMNS) partial = true
    else lines.push(tail)
  }
  const records: HistoryRecord[] = []
  for (const line of lines) {
    const rec = parseHistoryLine(line)
    // legacy 2-column lines (`uuid\tcmd`) and garbage are skipped, as HistoryFile does
    if (rec !== null) records.push({ index: records.length, ...rec })
  }
  return { records, partial }
}

/**
 * Keyed by runName: Nextflow refuses to reuse a runName within one history file, while a sessionId repeats
 * across `-resume`s. When a runName appears twice (hand-edited files), the last line wins.
 */
export function diffHistory (prev: HistoryRecord[], next: HistoryRecord[]): HistoryDiff {
  const before = new Map<string, HistoryRecord>()
  for (const r of prev) before.set(r.runName, r)
  const after = new Map<string, HistoryRecord>()
  for (const r of next) after.set(r.runName, r)

  const started: HistoryRecord[] = []
  const ended: HistoryRecord[] = []
  for (const r of after.values()) {
    const old = before.get(r.runName)
    if (old === undefined) {
      started.push(r)
      if (r.status !== 'running') ended.push(r)
    } else if (old.status === 'running' && r.status !== 'running') {
      ended.push(r)
    }
  }
  const byIndex = (a: HistoryRecord, b: HistoryRecord): number => a.index - b.index
  return { started: started.sort(byIndex), ended: ended.sort(byIndex) }
}
