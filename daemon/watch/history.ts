// Parser of Nextflow's `.nextflow/history` (HistoryFile.groovy) and a differ between two reads of it.
// Pure: the watcher reads the file and hands the text in. Nextflow rewrites the whole file in place
// (truncate and write, not a rename) when a run ends, so a read may catch it empty or cut mid-line; the
// caller re-reads on the next event, and `partial` says a re-read is due.

export type HistoryStatus = 'running' | 'OK' | 'ERR'

export interface HistoryRecord {
  /** 0-based position among the valid records of this read (not the raw line number) */
  index: number
  /** `yyyy-MM-dd HH:mm:ss`, the launch time in the launching host's local time, no zone */
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
const TIMESTAMP_RE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$/
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
// CmdRun.RUN_NAME_PATTERN, case-insensitive; generated names use `_`
const RUN_NAME_RE = /^[a-z](?:[a-z\d]|[-_](?=[a-z\d])){0,79}$/i

/**
 * Nextflow splits with Groovy's `tokenize('\t')`, which drops empty tokens; a line with an empty column
 * therefore has fewer than 7 tokens and is skipped, as Nextflow itself does.
 */
export function parseHistoryLine (line: string): Omit<HistoryRecord, 'index'> | null {
  const cols = line.replace(/\r$/, '').split('\t').filter((c) => c !== '')
  if (cols.length !== COLUMNS) return null
  const [timestamp, duration, runName, status, revisionId, sessionId, command] = cols as [
    string, string, string, string, string, string, string]
  if (!TIMESTAMP_RE.test(timestamp)) return null
  if (!RUN_NAME_RE.test(runName)) return null
  if (!UUID_RE.test(sessionId)) return null
  let parsedStatus: HistoryStatus
  if (status === '-') parsedStatus = 'running'
  else if (status === 'OK' || status === 'ERR') parsedStatus = status
  else return null
  return {
    timestamp,
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
