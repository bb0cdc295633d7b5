// Extracts the few lifecycle markers the daemon needs from a `.nextflow.log` text (one JVM, one session).
// Pure: the watcher reads the file (following path plus inode, since a new run rolls it to `.nextflow.log.1`).
// Layout: `%d{MMM-dd HH:mm:ss.SSS} [%t] %-5level %logger{36} - %msg%n`; multi-line messages continue on
// lines without a timestamp, which is where CmdInfo's `  Process: PID@HOST [ip]` sits.
//
// The date is written in the JVM's default locale: `Okt.-02`, `févr.-02`, `12月-02`, `Sept-02` (en-GB),
// `9-р сар-02` (mn: a hyphen and a space inside the month), `de set.-02` (ca), and before Nextflow 23.05 (logback
// 1.2's SimpleDateFormat) in the locale's digits too (`سبتمبر-٠٩ ١١:٥٧:٠٧.٠٨٩`). It has no year and no zone, so
// nothing can be compared with it; the daemon needs none of it. A line is an entry when the shape around the date
// holds (`<date> HH:mm:ss.SSS [thread] LEVEL logger - `, digits of any script); the date is never read.
// Fixtures: test/fixtures/nextflow-locales (the JDK's own output for 80 locales).

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
  /**
   * hostname of the JVM; a pid means something only on that host. `localhost` with no `ip` is the JDK's fallback
   * when the host's own name does not resolve (`Process: PID@localhost null`): see observe.ts logPidOnHost.
   */
  host?: string
  ip?: string
  /** Nextflow's version (the banner, else CmdInfo's `Version:`), e.g. `24.04.2`, `25.01.0-edge` */
  version?: string
  aborted: boolean
  abortCause?: string
  /** `> Execution complete -- Goodbye`: logged after the history update, on success and on abort alike */
  goodbye: boolean
  launching?: LaunchInfo
}

// The date before the time is any short text (a lazy, bounded match: spaces and hyphens occur in months), so
// neither the month's spelling nor the month-day order matters (`MMM-dd` since 2015; `dd-MMM` would read too).
// \p{Nd}: logback 1.2 wrote Arabic, Persian, Devanagari, Bengali, Thai, ... digits.
const ENTRY_RE = /^\S.{0,39}? \p{Nd}{2}:\p{Nd}{2}:\p{Nd}{2}\.\p{Nd}{3} \[[^\]]*\] [A-Z]+ +(\S+) - (.*)$/u
const UUID_RE = /^Session UUID: ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\s*$/i
const RUN_NAME_RE = /^Run name: ([A-Za-z][\w-]*)\s*$/
// 26.x prints no DSL tag; 25.x and older print `[name] DSL2 - revision:`
const LAUNCHING_RE = /^Launching `(.+)` \[(\S+)\] (?:DSL\d )?- revision: (\S+)/
const ABORTED_RE = /^Session aborted -- Cause: ?(.*)$/
const GOODBYE_RE = /^> Execution complete -- Goodbye\s*$/
const VERSION_RE = /^\d+\.\d+\.\d+(?:-[\w.]+)?$/
const BANNER_RE = /^N E X T F L O W {2}~ {2}version (\S+)\s*$/
// CmdInfo: `"Process: " + RuntimeMXBean.getName() + " " + getLocalAddress()`: the address is `[ip]`, or `null` when
// InetAddress.getLocalHost() failed (and then the JDK names the host `localhost`). The pid is Java's int, in ASCII.
const PROCESS_RE = /^\s+Process: (\d+)@(\S+)(?: \[([^\]]*)\]| null)?\s*$/
const INFO_VERSION_RE = /^\s+Version: (\S+) build/
// The CmdInfo block is logged by CmdRun; `%logger{36}` may abbreviate the package, never the class.
const CMD_RUN_RE = /(?:^|\.)CmdRun$/

export function parseLogMarkers (text: string): LogMarkers {
  const out: LogMarkers = { aborted: false, goodbye: false }
  const lines = text.split('\n')
  // The last element is either '' (text ended with a newline) or a line still being written: a cut
  // `Run name: cranky_pa` must not be taken for a name, so it is dropped and read again next time.
  lines.pop()
  // Continuation lines count only inside CmdRun's CmdInfo block: a pipeline's own multi-line message
  // (an error report, a stack trace) that happens to hold `  Process: ...` is not the JVM's identity.
  let inCmdRun = false
  for (const raw of lines) {
    const line = raw.replace(/\r$/, '')
    const entry = ENTRY_RE.exec(line)
    if (entry === null) {
      if (inCmdRun) matchInfoLine(line, out)
      continue
    }
    inCmdRun = CMD_RUN_RE.test(entry[1] ?? '')
    matchMessage(entry[2] ?? '', out)
  }
  return out
}

function matchInfoLine (line: string, out: LogMarkers): void {
  let m: RegExpExecArray | null
  if (out.pid === undefined && (m = PROCESS_RE.exec(line)) !== null) {
    out.pid = Number(m[1])
    out.host = m[2]
    if (m[3] !== undefined) out.ip = m[3]
  } else if (out.version === undefined && (m = INFO_VERSION_RE.exec(line)) !== null && VERSION_RE.test(m[1] ?? '')) {
    out.version = m[1]
  }
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
  } else if (out.version === undefined && (m = BANNER_RE.exec(msg)) !== null && VERSION_RE.test(m[1] ?? '')) {
    out.version = m[1]
  } else if ((m = ABORTED_RE.exec(msg)) !== null) {
    if (!out.aborted) out.abortCause = (m[1] ?? '').trim()
    out.aborted = true
  } else if (GOODBYE_RE.test(msg)) {
    out.goodbye = true
  }
}

/**
 * The first Nextflow that writes `$` in a secret's value as `\$` in the env file its tasks source
 * (LocalSecretsProvider, nextflow-io/nextflow#5021; in 24.04.2 and 24.05.0-edge, not in 24.04.0/24.04.1).
 */
export const DOLLAR_SAFE_VERSION = '24.04.2'

/**
 * Does this Nextflow escape `$` in secret values? By number only: 24.05.0-edge is after 24.04.2, 24.04.0-edge
 * before it. null for a version that is not `N.N.N[-suffix]`. Pure.
 */
export function escapesDollar (version: string): boolean | null {
  const m = /^(\d+)\.(\d+)\.(\d+)(?:-[\w.]+)?$/.exec(version)
  if (m === null) return null
  const [a, b, c] = [Number(m[1]), Number(m[2]), Number(m[3])]
  return a !== 24 ? a > 24 : b !== 4 ? b > 4 : c >= 2
}
