// Is a pid still the process we saw? Reads /proc/PID/stat (Linux only): the start time (field 22, clock
// ticks since boot) pins a pid to one process, so a pid reused after Nextflow died counts as dead.
import { readFile } from 'node:fs/promises'

export interface ProcStat {
  /** field 3: R, S, D, Z (zombie), X (dead), T, t, I, ... */
  state: string
  /** field 22: start time after boot, in clock ticks */
  startTime: number
}

/**
 * Field 2 (comm) is in parentheses and may itself hold spaces and `)`, e.g. `(java) (x)`; the kernel
 * writes it verbatim, so the fields after it start after the LAST `)` in the line.
 */
export function parseProcStat (text: string): ProcStat | null {
  const close = text.lastIndexOf(')')
  if (close < 0 || text.indexOf('(') < 0 || text.indexOf('(') > close) return null
  const rest = text.slice(close + 1).trim().split(/\s+/)
  // rest[0] is field 3, so field N is rest[N - 3]
  const state = rest[0]
  const start = rest[22 - 3]
  if (state === undefined || start === undefined || !/^\d+$/.test(start)) return null
  const startTime = Number(start)
  if (!Number.isSafeInteger(startTime)) return null
  return { state, startTime }
}

function validPid (pid: number): boolean {
  return Number.isSafeInteger(pid) && pid > 0
}

async function readStat (pid: number): Promise<ProcStat | null> {
  if (!validPid(pid)) return null
  let text: string
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8')
  } catch {
    // ENOENT: gone; ESRCH: died between open and read
    return null
  }
  return parseProcStat(text)
}

/** The start time of a live process, or null when there is no such process. */
export async function processStartTime (pid: number): Promise<number | null> {
  const st = await readStat(pid)
  return st === null ? null : st.startTime
}

/**
 * True when `pid` exists, is not a zombie, and (when `startTime` is known) started at that time.
 * A zombie has exited and released its locks; it only waits for its parent to reap it.
 */
export async function isProcessAlive (pid: number, startTime: number | null): Promise<boolean> {
  const st = await readStat(pid)
  if (st === null) return false
  if (st.state === 'Z' || st.state === 'X') return false
  return startTime === null || st.startTime === startTime
}
