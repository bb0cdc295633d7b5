// Signalling a launched run: the wrapper leads its own session (forkpty calls setsid), and the command may have
// made process groups of its own inside it (a shell with job control), so every group of the session is signalled.
import { readdir, readFile } from 'node:fs/promises'

export interface StatIds {
  pid: number
  pgrp: number
  session: number
}

/** Fields 1, 5 and 6 of /proc/PID/stat; comm (field 2) may hold spaces and ')', so fields count from the last ')'. */
export function parseStatIds (text: string): StatIds | null {
  const close = text.lastIndexOf(')')
  const pid = Number(text.slice(0, text.indexOf(' ')))
  if (close < 0 || !Number.isSafeInteger(pid)) return null
  const rest = text.slice(close + 1).trim().split(/\s+/)
  const pgrp = Number(rest[5 - 3])
  const session = Number(rest[6 - 3])
  if (!Number.isSafeInteger(pgrp) || !Number.isSafeInteger(session)) return null
  return { pid, pgrp, session }
}

/** The process groups of a session, its leader's own first. */
export async function sessionGroups (sid: number): Promise<number[]> {
  const groups = new Set<number>([sid])
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue
    const text = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => null)
    const ids = text === null ? null : parseStatIds(text)
    if (ids !== null && ids.session === sid && ids.pgrp > 0) groups.add(ids.pgrp)
  }
  return [...groups]
}

/** Send `signal` to every process group of the session led by `sid`. Returns how many groups took it. */
export async function signalSession (sid: number, signal: NodeJS.Signals): Promise<number> {
  if (!Number.isSafeInteger(sid) || sid <= 1) return 0
  let n = 0
  for (const g of await sessionGroups(sid)) {
    try {
      process.kill(-g, signal)
      n++
    } catch {
      // ESRCH: that group is gone already
    }
  }
  return n
}
