// What the watcher knows of one launch dir: the runNames of the recent history lines and their status, and the
// sessions whose Goodbye was reported, both bounded and held as copies (history-file.ts says why). A scan reads only
// the tail of `.nextflow/history` and the head and tail of `.nextflow.log(.1)`, safely (read-owned.ts), and turns
// what changed into domain events. A file that someone else can write (a shared project dir with umask 002) raises
// events marked untrusted: no auto-run comes of them, and a Goodbye in such a log is ignored.
import type { HistoryRecord, HistoryStatus } from '../nextflow/history.js'
import type { FileHandle } from 'node:fs/promises'
import { MAX_RECORDS, own, ownRecord, readHistoryTailIn } from '../nextflow/history-file.js'
import { parseLogMarkers } from '../nextflow/log-markers.js'
import { HEAD_BYTES, openDir, readOwnedAt } from '../os/read-owned.js'

/** How a launch dir is opened: by fd from its watch root (held-root.ts), or (a run's own dir) by its path. */
export type DirOpener = (dir: string) => Promise<FileHandle | null>

/** runNames remembered per launch dir: the last read's (at most MAX_RECORDS) and as many older ones. */
export const MAX_KNOWN = 2 * MAX_RECORDS
/** Goodbyes remembered per launch dir (one per session and runName; a dir sees a few). */
const MAX_GOODBYES = 64

export type LaunchEvent =
  | { type: 'run-started', launchDir: string, record: HistoryRecord, trusted: boolean, uid: number, mtimeMs: number }
  | { type: 'run-ended', launchDir: string, sessionId: string, runName: string, status: 'OK' | 'ERR', via: 'history' | 'log' }

interface Known { name: string, status: HistoryStatus }

/**
 * What a dir that knows no run yet diffs against. The per-dir Map and Set are made on first use: empty, with their
 * tables, they were about 300 bytes a launch dir whose history has no line yet or whose log never said Goodbye.
 */
const NONE: ReadonlyMap<string, Known> = new Map()

/**
 * What a read of the history says beside what was known: runNames not seen before (started; ended too when already
 * terminal) and runNames that went from running to terminal. Same rules as diffHistory, against the bounded map. Pure.
 */
export function diffKnown (known: ReadonlyMap<string, Known>, next: readonly HistoryRecord[]): { started: HistoryRecord[], ended: HistoryRecord[] } {
  const last = new Map<string, HistoryRecord>()
  for (const r of next) last.set(r.runName, r)
  const started: HistoryRecord[] = []
  const ended: HistoryRecord[] = []
  for (const r of last.values()) {
    const old = known.get(r.runName)
    if (old === undefined) {
      started.push(r)
      if (r.status !== 'running') ended.push(r)
    } else if (old.status === 'running' && r.status !== 'running') {
      ended.push(r)
    }
  }
  return { started, ended }
}

/** Insert (or move to the newest end) and drop the oldest beyond `max`: a Map keeps insertion order. */
function remember (known: Map<string, Known>, records: readonly HistoryRecord[], max: number): void {
  for (const r of records) {
    const old = known.get(r.runName)
    known.delete(r.runName)
    const name = old?.name ?? own(r.runName)
    known.set(name, { name, status: r.status })
  }
  while (known.size > max) known.delete(known.keys().next().value as string)
}

export class LaunchDir {
  readonly dir: string
  readonly uid: number
  #known: Map<string, Known> | null = null
  #goodbyes: Set<string> | null = null
  readonly #open: DirOpener
  #changed = false

  private constructor (dir: string, uid: number, open: DirOpener) {
    this.dir = dir
    this.uid = uid
    this.#open = open
  }

  /**
   * The dir's owner decides whose files count. `seed`: the lines already there predate the watch (a daemon start, a
   * tree moved in) and raise no start; a dir that became a launch dir while watched is read from scratch, and so is
   * the running lines of a history written at or after `changedSince` (ms): the daemon was already up and walking then.
   */
  static async open (dir: string, seed: boolean, changedSince = Number.POSITIVE_INFINITY, open: DirOpener = openDir): Promise<LaunchDir | null> {
    const fh = await open(dir)
    if (fh === null) return null
    try {
      const ld = new LaunchDir(dir, (await fh.stat()).uid, open)
      if (seed) {
        const h = await readHistoryTailIn(fh, ld.uid)
        // Written since the walk began: its finished lines are still seeds, its `-` lines are read again as starts.
        ld.#changed = h !== null && h.mtimeMs >= changedSince
        ld.#remember((h?.records ?? []).filter(r => !ld.#changed || r.status !== 'running'))
      }
      return ld
    } catch {
      return null
    } finally {
      await fh.close()
    }
  }

  /**
   * A launch dir found while watched, whose owner was read on the fd its watches were set through (the walk's,
   * walk.ts KeptDir): nothing to read yet, it is read from scratch by its first scan.
   */
  static found (dir: string, uid: number, open: DirOpener = openDir): LaunchDir {
    return new LaunchDir(dir, uid, open)
  }

  #remember (records: readonly HistoryRecord[]): void {
    if (records.length === 0) return
    this.#known ??= new Map()
    remember(this.#known, records, MAX_KNOWN)
  }

  /** opened as a seed, but the history was written after `changedSince`: a scan is due */
  get changedSinceSeed (): boolean {
    return this.#changed
  }

  get knownRuns (): number {
    return this.#known?.size ?? 0
  }

  /** A run of this dir is still `-` in the history as last read: its end is still to come. */
  hasRunning (): boolean {
    for (const r of (this.#known ?? NONE).values()) if (r.status === 'running') return true
    return false
  }

  /**
   * Read what changed. `retry` asks for another scan shortly: the history is rewritten in place (truncate, then
   * write), so a read may catch it half-written. What is known is only added to (and trimmed to the oldest), never
   * replaced by one read, so a torn read raises nothing twice.
   */
  async scan (what: { history: boolean, log: boolean }): Promise<{ events: LaunchEvent[], retry: boolean }> {
    const fh = await this.#open(this.dir)
    if (fh === null) return { events: [], retry: false }
    try {
      return await this.#scanIn(fh, what)
    } finally {
      await fh.close()
    }
  }

  async #scanIn (fh: FileHandle, what: { history: boolean, log: boolean }): Promise<{ events: LaunchEvent[], retry: boolean }> {
    const events: LaunchEvent[] = []
    let retry = false
    // The log first, then the history: Nextflow writes the history line before Goodbye, so a Goodbye read here is
    // always matched by a terminal line in the history read after it, and the end is reported once, by the history.
    const goodbyes: Array<{ sessionId: string, runName: string, aborted: boolean }> = []
    if (what.log) {
      for (const name of ['.nextflow.log', '.nextflow.log.1']) {
        const got = await readOwnedAt(fh, name, this.uid, { head: HEAD_BYTES })
        // A log someone else could have written says nothing about this user's runs.
        if (got === null || !got.trusted) continue
        const m = parseLogMarkers(got.text)
        if (m.goodbye && m.sessionId !== undefined && m.runName !== undefined) goodbyes.push({ sessionId: m.sessionId, runName: m.runName, aborted: m.aborted })
      }
    }
    const h = await readHistoryTailIn(fh, this.uid)
    if (h !== null) {
      retry = h.partial || (h.records.length === 0 && this.knownRuns > 0)
      const diff = diffKnown(this.#known ?? NONE, h.records)
      for (const r of diff.started) events.push({ type: 'run-started', launchDir: this.dir, record: ownRecord(r), trusted: h.trusted, uid: this.uid, mtimeMs: h.mtimeMs })
      for (const r of diff.ended) {
        events.push({ type: 'run-ended', launchDir: this.dir, sessionId: own(r.sessionId), runName: own(r.runName), status: r.status === 'OK' ? 'OK' : 'ERR', via: 'history' })
      }
      this.#remember(h.records)
    }
    for (const g of goodbyes) {
      const key = `${g.sessionId}\0${g.runName}`
      if (this.#goodbyes?.has(key) === true) continue
      this.#goodbyes ??= new Set()
      this.#goodbyes.add(own(key))
      if (this.#goodbyes.size > MAX_GOODBYES) this.#goodbyes.delete(this.#goodbyes.values().next().value as string)
      const known = this.#known?.get(g.runName)
      if (known !== undefined && known.status !== 'running') continue
      events.push({ type: 'run-ended', launchDir: this.dir, sessionId: own(g.sessionId), runName: own(g.runName), status: g.aborted ? 'ERR' : 'OK', via: 'log' })
    }
    return { events, retry }
  }
}
