// What the watcher knows of one launch dir: the history lines seen so far and the sessions whose Goodbye was
// reported. A scan reads only `.nextflow/history` and `.nextflow.log(.1)`, safely (no symlinks, only files of the
// dir's owner or root), and turns what changed into domain events.
import { promises as fsp } from 'node:fs'
import { join } from 'node:path'
import { diffHistory, parseHistory, type HistoryRecord } from './history.js'
import { parseLogMarkers } from './log-markers.js'
import { CACHE_DIR, HISTORY } from './walk.js'
import { HEAD_BYTES, readOwned } from './read-owned.js'

const HISTORY_MAX = 4 * 1024 * 1024

export type LaunchEvent =
  | { type: 'run-started', launchDir: string, record: HistoryRecord }
  | { type: 'run-ended', launchDir: string, sessionId: string, runName: string, status: 'OK' | 'ERR', via: 'history' | 'log' }

/** The text of a file the launch dir's user owns (see read-owned.ts), or null. */
export async function readOwnedText (path: string, uid: number, head = HEAD_BYTES): Promise<string | null> {
  return (await readOwned(path, uid, head))?.text ?? null
}

export class LaunchDir {
  readonly dir: string
  readonly uid: number
  readonly #known = new Map<string, HistoryRecord>()
  readonly #goodbyes = new Set<string>()
  #changed = false

  private constructor (dir: string, uid: number) {
    this.dir = dir
    this.uid = uid
  }

  /**
   * The dir's owner decides whose files count. `seed`: the lines already there predate the watch (a daemon start, a
   * tree moved in) and raise no start; a dir that became a launch dir while watched is read from scratch, and so is
   * the running lines of a history written at or after `changedSince` (ms): the daemon was already up and walking then.
   */
  static async open (dir: string, seed: boolean, changedSince = Number.POSITIVE_INFINITY): Promise<LaunchDir | null> {
    let st
    try {
      st = await fsp.lstat(dir)
    } catch {
      return null
    }
    if (!st.isDirectory()) return null
    const ld = new LaunchDir(dir, st.uid)
    if (seed) {
      const h = await ld.#readHistory()
      // Written since the walk began: its finished lines are still seeds, its `-` lines are read again as starts.
      ld.#changed = h !== null && h.mtimeMs >= changedSince
      for (const r of h?.records ?? []) if (!ld.#changed || r.status !== 'running') ld.#known.set(r.runName, r)
    }
    return ld
  }

  /** opened as a seed, but the history was written after `changedSince`: a scan is due */
  get changedSinceSeed (): boolean {
    return this.#changed
  }

  get knownRuns (): number {
    return this.#known.size
  }

  /** A run of this dir is still `-` in the history as last read: its end is still to come. */
  hasRunning (): boolean {
    for (const r of this.#known.values()) if (r.status === 'running') return true
    return false
  }

  async #readHistory (): Promise<ReturnType<typeof parseHistory> & { mtimeMs: number } | null> {
    try {
      const st = await fsp.lstat(join(this.dir, CACHE_DIR))
      if (!st.isDirectory() || (st.uid !== this.uid && st.uid !== 0)) return null
    } catch {
      return null
    }
    const got = await readOwned(join(this.dir, CACHE_DIR, HISTORY), this.uid, HISTORY_MAX)
    return got === null ? null : { ...parseHistory(got.text), mtimeMs: got.mtimeMs }
  }

  /**
   * Read what changed. `retry` asks for another scan shortly: the history is rewritten in place (truncate, then
   * write), so a read may catch it half-written. Seen runNames are never forgotten, so a torn read raises nothing twice.
   */
  async scan (what: { history: boolean, log: boolean }): Promise<{ events: LaunchEvent[], retry: boolean }> {
    const events: LaunchEvent[] = []
    let retry = false
    // The log first, then the history: Nextflow writes the history line before Goodbye, so a Goodbye read here is
    // always matched by a terminal line in the history read after it, and the end is reported once, by the history.
    const goodbyes: Array<{ sessionId: string, runName: string, aborted: boolean }> = []
    if (what.log) {
      for (const name of ['.nextflow.log', '.nextflow.log.1']) {
        const text = await readOwnedText(join(this.dir, name), this.uid)
        if (text === null) continue
        const m = parseLogMarkers(text)
        if (m.goodbye && m.sessionId !== undefined && m.runName !== undefined) goodbyes.push({ sessionId: m.sessionId, runName: m.runName, aborted: m.aborted })
      }
    }
    const h = await this.#readHistory()
    if (h !== null) {
      retry = h.partial || (h.records.length === 0 && this.#known.size > 0)
      const diff = diffHistory([...this.#known.values()], h.records)
      for (const r of diff.started) events.push({ type: 'run-started', launchDir: this.dir, record: r })
      for (const r of diff.ended) {
        events.push({ type: 'run-ended', launchDir: this.dir, sessionId: r.sessionId, runName: r.runName, status: r.status === 'OK' ? 'OK' : 'ERR', via: 'history' })
      }
      for (const r of h.records) this.#known.set(r.runName, r)
    }
    for (const g of goodbyes) {
      const key = `${g.sessionId}\0${g.runName}`
      if (this.#goodbyes.has(key)) continue
      this.#goodbyes.add(key)
      const known = this.#known.get(g.runName)
      if (known !== undefined && known.status !== 'running') continue
      events.push({ type: 'run-ended', launchDir: this.dir, sessionId: g.sessionId, runName: g.runName, status: g.aborted ? 'ERR' : 'OK', via: 'log' })
    }
    return { events, retry }
  }
}
