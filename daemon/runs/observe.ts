// Reads what Nextflow left in a launch dir about one run: its history line, the log markers of its session and a
// `-bg` pid file. Only these three files are ever read (never work/). As root the launch dir is a user's: nothing
// is read through a symlink (`.nextflow` is held open by fd), only files owned by the run's user (or root) count,
// and a file someone else could have written (read-owned.ts: a shared project dir with umask 002) proves nothing
// alone: its log and pid file are ignored, and its history line counts only as far as the session's LOCK, held by a
// process of the run's user, agrees (a `-` line while held, a terminal line once not).
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import type { HistoryRecord } from '../nextflow/history.js'
import { ownRecord, scanHistory } from '../nextflow/history-file.js'
import type { Checkpoints } from '../nextflow/history-checkpoints.js'
import { parseLogMarkers, type LogMarkers } from '../nextflow/log-markers.js'
import { readOwned } from '../os/read-owned.js'
import { sessionLockHolder } from './liveness/session-lock.js'

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

/**
 * Pick the run's history line: by runName once known, else by session UUID, else the first line after the mark.
 * Pure; `records` in file order with their file positions as `index` (a stream keeps only these candidates).
 */
export function matchHistory (records: HistoryRecord[], files: Pick<RunFiles, 'sessionId' | 'historyMark' | 'runName'>): HistoryRecord | null {
  if (files.runName !== null) {
    const byName = records.find(r => r.runName === files.runName)
    if (byName !== undefined) return byName
  }
  const byUuid = records.filter(r => r.sessionId === files.sessionId)
  if (byUuid.length > 0) return byUuid[byUuid.length - 1]!
  if (files.historyMark !== null) return records.find(r => r.index === files.historyMark) ?? null
  return null
}

/**
 * The run's history line (matchHistory), from a streamed history keeping only the candidates: the first of the
 * runName, the last of the session (a `-resume` keeps its old UUID), the one at the mark. Copies only.
 */
async function readMatch (files: RunFiles, checkpoints: Checkpoints): Promise<{ history: HistoryRecord | null, count: number, trusted: boolean }> {
  let byName: HistoryRecord | undefined
  let byUuid: HistoryRecord | undefined
  let atMark: HistoryRecord | undefined
  const scan = await scanHistory(files.launchDir, files.uid, () => {
    byName = byUuid = atMark = undefined
    return {
      visit: (r) => {
        if (files.runName !== null && byName === undefined && r.runName === files.runName) byName = ownRecord(r)
        if (r.sessionId === files.sessionId) byUuid = ownRecord(r)
        if (files.historyMark !== null && r.index === files.historyMark) atMark = ownRecord(r)
      },
      // The part before a checkpoint matters when it may hold the runName's first line, the session's last line (none
      // after it), or the mark.
      enough: (skipped) => (files.runName === null || !skipped.mayHold(files.runName)) &&
        (byUuid !== undefined || !skipped.mayHold(files.sessionId)) &&
        (files.historyMark === null || files.historyMark >= skipped.count)
    }
  }, checkpoints)
  if (scan === null) return { history: null, count: 0, trusted: true }
  const candidates = [...new Set([byName, byUuid, atMark])].filter((r): r is HistoryRecord => r !== undefined).sort((a, b) => a.index - b.index)
  return { history: matchHistory(candidates, files), count: scan.count, trusted: scan.trusted }
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

/** What the run's files say now; `checkpoints`: the daemon's, where a long history is read from (history-checkpoints.ts). */
export async function observeRun (files: RunFiles, checkpoints: Checkpoints): Promise<Observation> {
  const m = await readMatch(files, checkpoints)
  let history = m.history
  const historyCount = m.count
  if (history !== null && !m.trusted) {
    // A line anyone else could have written: believed only as far as the session's LOCK, held by a process of the
    // run's user, agrees. A `-` line counts while the lock is held; a terminal line once it is not.
    const held = (await sessionLockHolder(files.launchDir, history.sessionId, files.uid)).held
    if (history.status === 'running' && !held) history = null
    else if (history.status !== 'running' && held) history = { ...history, status: 'running', duration: null }
  }
  let log: LogMarkers | null = null
  // The log rolls to .1 when another run starts in the same dir: look there too for our session.
  for (const name of ['.nextflow.log', '.nextflow.log.1']) {
    const l = await readOwned(join(files.launchDir, name), files.uid)
    if (l === null || !l.trusted) continue
    const markers = parseLogMarkers(l.text)
    if (markers.sessionId === files.sessionId || (history !== null && markers.runName === history.runName)) {
      // copies: a runName kept in the ledger must not pin the log's text (history-file.ts)
      const copy = JSON.parse(JSON.stringify(markers)) as LogMarkers
      if (copy.pid !== undefined && !(await pidMayBeTheRuns(copy.pid, files.uid))) {
        const { pid: _pid, host: _host, ip: _ip, ...rest } = copy
        log = rest
      } else {
        log = copy
      }
      break
    }
  }
  let pidFile: Observation['pidFile'] = null
  const p = await readOwned(join(files.launchDir, '.nextflow.pid'), files.uid, { head: 64, tail: 0 })
  if (p !== null && p.trusted) {
    const pid = Number(p.text.trim())
    if (Number.isInteger(pid) && await pidMayBeTheRuns(pid, files.uid)) pidFile = { pid, mtimeMs: p.mtimeMs }
  }
  return { history, historyCount, log, pidFile }
}

/** How many history records a launch dir holds now: the mark for a run being armed. */
export async function historyMarkOf (launchDir: string, uid: number, checkpoints: Checkpoints): Promise<number> {
  return (await scanHistory(launchDir, uid, () => ({ visit: () => {}, enough: () => true }), checkpoints))?.count ?? 0
}
