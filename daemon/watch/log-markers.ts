// Extracts the few lifecycle markers the daemon needs from a `.nextflow.log` text (one JVM, one session).
// Pure: the watcher reads the file (following path plus inode, since a new run rolls it to `.nextflow.log.1`).
// Layout: `%d{MMM-dd HH:mm:ss.SSS} [%t] %-5level %logger{36} - %msg%n`; multi-line messages continue on
// lines without a timestamp, which is where CmdInfo's `  Process: PID@HOST [ip]` sits.

export interface LaunchInfo {
  /** the script or repository, as between the backticks */
  script: string
  runName: string
  revision: string
}

export interface LogMarkers {
  sessionId?: string
  runName?: string
  /** the JVM's pid: the only place a non `-bg` run records it */
  pid?: number
  /** hostname of the JVM; a pid means something only on that host */
  host?: string
  ip?: string
  aborted: boolean
  abortCause?: string
  /** `> Execution complete -- Goodbye`: logged after the history update, on success and on abort alike */
  goodbye: boolean
  launching?: LaunchInfo
}

const ENTRY_RE = /^[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3} \[[^\]]*\] [A-Z]+ +\S+ - (.*)$/
const UUID_RE = /^Session UUID: ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\s*$/i
const RUN_NAME_RE = /^Run name: ([A-Za-z][\w-]*)\s*$/
// 26.x prints no DSL tag; 25.x and older print `[name] DSL2 - revision:`
const LAUNCHING_RE = /^Launching `(.+)` \[(\S+)\] (?:DSL\d )?- revision: (\S+)/
const ABORTED_RE = /^Session aborted -- Cause: ?(.*)$/
const GOODBYE_RE = /^> Execution complete -- Goodbye\s*$/
const PROCESS_RE = /^\s+Process: (\d+)@(\S+)(?: \[([^\]]*)\])?\s*$/

export function parseLogMarkers (text: string): LogMarkers {
  const out: LogMarkers = { aborted: false, goodbye: false }
  const lines = text.split('\n')
  // The last element is either '' (text ended with a newline) or a line still being written: a cut
  // `Run name: cranky_pa` must not be taken for a name, so it is dropped and read again next time.
  lines.pop()
  for (const raw of lines) {
    const line = raw.replace(/\r$/, '')
    const entry = ENTRY_RE.exec(line)
    if (entry === null) {
      // A continuation line; CmdInfo's block is the only multi-line message holding `Process:`.
      if (out.pid === undefined) {
        const p = PROCESS_RE.exec(line)
        if (p !== null) {
          out.pid = Number(p[1])
          out.host = p[2]
          if (p[3] !== undefined) out.ip = p[3]
        }
      }
      continue
    }
    matchMessage(entry[1] ?? '', out)
  }
  return out
}

/** First occurrence wins: a session logs its identity once, and a later line must not overwrite it. */
function matchMessage (msg: string, out: LogMarkers): void {
  let m: RegExpExecArray | null
  if (out.sessionId === undefined && (m = UUID_RE.exec(msg)) !== null) {
    out.sessionId = (m[1] ?? '').toLowerCase()
  } else if (out.runName === undefined && (m = RUN_NAME_RE.exec(msg)) !== null) {
    out.runName = m[1] ?? ''
  } else if (out.launching === undefined && (m = LAUNCHING_RE.exec(msg)) !== null) {
    out.launching = { script: m[1] ?? '', runName: m[2] ?? '', revision: m[3] ?? '' }
  } else if ((m = ABORTED_RE.exec(msg)) !== null) {
    if (!out.aborted) out.abortCause = (m[1] ?? '').trim()
    out.aborted = true
  } else if (GOODBYE_RE.test(msg)) {
    out.goodbye = true
  }
}
