// Reads what Nextflow left in a launch dir about one run: its history line, the log markers of its session and a
// `-bg` pid file. Only these three files are ever read (never work/). As root the launch dir is a user's: nothing
// is read through a symlink, and only files owned by the run's user (or root) count.
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { parseHistory, type HistoryRecord } from '../watch/history.js'
import { parseLogMarkers, type LogMarkers } from '../watch/log-markers.js'
import { readOwned } from '../watch/read-owned.js'

export interface RunFiles {
  launchDir: string
  uid: number
  sessionId: string
  /** history records present when the run was armed: a `-resume` keeps its old UUID, so it is the next line */
  historyMark: number | null
  /** the run's name once known: it pins the history line after a resume was matched */
  runName: string | null
}

export interface Observation {
  history: HistoryRecord | null
  /** every record in the file, for callers that track the mark */
  historyCount: number
  log: LogMarkers | null
  /** pid from `.nextflow.pid` (written by `nextflow run -bg`), with the file's mtime */
  pidFile: { pid: number, mtimeMs: number } | null
}

/** `.nextflow` must be a real directory of the user's, not a symlink to somewhere else. */
async function cacheDirOk (launchDir: string, uid: number): Promise<boolean> {
  try {
    const st = await fsp.lstat(join(launchDir, '.nextflow'))
    return st.isDirectory() && (st.uid === uid || st.uid === 0)
  } catch {
    return false
  }
}

/** Pick the run's history line: by runName once known, else by session UUID, else the first line after the mark. */
export function matchHistory (records: HistoryRecord[], files: Pick<RunFiles, 'sessionId' | 'historyMark' | 'runName'>): HistoryRecord | null {
  if (files.runName !== null) {
    const byName = records.find(r => r.runName === files.runName)
    if (byName !== undefined) return byName
  }
  const byUuid = records.filter(r => r.sessionId === files.sessionId)
  if (byUuid.length > 0) return byUuid[byUuid.length - 1]!
  if (files.historyMark !== null && records.length > files.historyMark) return records[files.historyMark]!
  return null
}

/**
 * The log's Nextflow pid, when it names a process on this host. The JDK writes `localhost` (and CmdInfo `null` for
 * the address) when the JVM's host cannot resolve its own name; that JVM is taken to be on this host unless the run
 * is bound to a Slurm job, whose head runs on a compute node. A pid only ever adds an "alive" signal beside the
 * session lock (monitor.ts), so a wrong guess keeps secrets a little longer, never ends a live run. Pure.
 */
export function logPidOnHost (log: Pick<LogMarkers, 'pid' | 'host' | 'ip'> | null, host: string, slurmBound: boolean): number | null {
  if (log?.pid === undefined) return null
  if (log.host === undefined || log.host === host || log.host.split('.')[0] === host.split('.')[0]) return log.pid
  if (log.host === 'localhost' && log.ip === undefined && !slurmBound) return log.pid
  return null
}

/**
 * May `pid` be the run's Nextflow? Not when another user's process holds it: a forged or stale `Process:` line or
 * pid file naming root's or another user's long-lived process (pid 1, sshd) would keep the run, and its secrets,
 * alive for ever. A pid with no process here (ended, or on another host) stays: its probe says it is gone.
 */
export async function pidMayBeTheRuns (pid: number, uid: number): Promise<boolean> {
  if (!Number.isSafeInteger(pid) || pid <= 1) return false
  try {
    return (await fsp.stat(`/proc/${pid}`)).uid === uid
  } catch {
    return true
  }
}

export async function observeRun (files: RunFiles): Promise<Observation> {
  let history: HistoryRecord | null = null
  let historyCount = 0
  if (await cacheDirOk(files.launchDir, files.uid)) {
    const h = await readOwned(join(files.launchDir, '.nextflow', 'history'), files.uid, 4 * 1024 * 1024)
    if (h !== null) {
      const parsed = parseHistory(h.text)
      historyCount = parsed.records.length
      history = matchHistory(parsed.records, files)
    }
  }
  let log: LogMarkers | null = null
  // The log rolls to .1 when another run starts in the same dir: look there too for our session.
  for (const name of ['.nextflow.log', '.nextflow.log.1']) {
    const l = await readOwned(join(files.launchDir, name), files.uid)
    if (l === null) continue
    const markers = parseLogMarkers(l.text)
    if (markers.sessionId === files.sessionId || (history !== null && markers.runName === history.runName)) {
      if (markers.pid !== undefined && !(await pidMayBeTheRuns(markers.pid, files.uid))) {
        const { pid: _pid, host: _host, ip: _ip, ...rest } = markers
        log = rest
      } else {
        log = markers
      }
      break
    }
  }
  let pidFile: Observation['pidFile'] = null
  const p = await readOwned(join(files.launchDir, '.nextflow.pid'), files.uid, 64)
  if (p !== null) {
    const pid = Number(p.text.trim())
    if (Number.isInteger(pid) && await pidMayBeTheRuns(pid, files.uid)) pidFile = { pid, mtimeMs: p.mtimeMs }
  }
  return { history, historyCount, log, pidFile }
}

/** How many history records a launch dir holds now: the mark for a run being armed. */
export async function historyMarkOf (launchDir: string, uid: number): Promise<number> {
  if (!(await cacheDirOk(launchDir, uid))) return 0
  const h = await readOwned(join(launchDir, '.nextflow', 'history'), uid, 4 * 1024 * 1024)
  return h === null ? 0 : parseHistory(h.text).records.length
}
