// The run archive: ended runs whose every target is revoked ("settled"), moved out of the hot runs.json so that the
// daemon's start and every ledger write stop growing with the history kept for `runs.retentionDays` (issue 18: with
// 10,000 ended runs in runs.json an arm's two ledger writes took 80-100 ms instead of 15). It is never read at start:
// only what shows or counts ended runs reads it (`runs list --all`, `runs show` of an old run, status, metrics).
//
// Format: a dir `runs-archive/` beside runs.json (0700), one segment per UTC day of archiving, `YYYY-MM-DD.jsonl`
// (0600), each line one run record as runs.json holds it. Segments are only appended (then fsync'd) and unlinked
// whole by retention, never rewritten: the ledger appends a run here durably before it rewrites runs.json without it,
// so a crash between the two leaves the run in both files, and readers count it once (the hot copy wins). A segment
// whose last bytes lack their newline holds a torn append (a crash in the middle of it): those runs are still in
// runs.json, so readers ignore the tail and the next append cuts it off. Any other line that is not a settled run
// record is a broken archive: NFS_ERR_STORE_UNREADABLE naming the segment and the line, the file left as it is.
import { constants, promises as fsp, type Stats } from 'node:fs'
import { join } from 'node:path'
import { isCoded, nfsError } from '../errors.js'
import { isTerminal, type RunRecord, type RunState, type TargetName, type TargetState } from '../types.js'
import { fsyncDir } from './atomic-file.js'

const SEGMENT_RE = /^(\d{4}-\d{2}-\d{2})\.jsonl$/
const DAY_MS = 86_400_000
const NL = 0x0a
const SHARE_MS = 5_000

/** A run that holds nothing any more: ended, and every target revoked. Only such runs are archived. */
export function isSettled (r: Pick<RunRecord, 'state' | 'targets'>): boolean {
  return isTerminal(r.state) && Object.values(r.targets).every(t => t === undefined || t.state === 'revoked')
}

/** What counting needs of an archived run (status, metrics), without keeping whole records in memory. */
export interface RunSummary {
  user: string
  state: RunState
  targets: Array<[TargetName, TargetState]>
}

export interface RunArchive {
  /** every archived run, each once (a run appended twice after a crash: its last line), oldest segment first */
  list (): Promise<RunRecord[]>
  find (runId: string): Promise<RunRecord | undefined>
  /** per archived run its state and its targets' states: read once, then kept up to date in memory */
  summaries (): Promise<ReadonlyMap<string, RunSummary>>
}

export interface ArchiveWriter extends RunArchive {
  /** append these records to the segment of `now`'s day and fsync it; on failure nothing counts as archived */
  append (runs: readonly RunRecord[], now: Date): Promise<void>
  /** unlink the segments whose every run ended before `horizon` (their day is over before it); how many */
  prune (horizon: Date): Promise<number>
}

function broken (path: string, why: string): Error {
  return nfsError('NFS_ERR_STORE_UNREADABLE', [path, why])
}

/** The dir and each segment must be the daemon's own and closed to everyone else, or nothing in them is trusted. */
function checkOwn (st: Stats, path: string, kind: 'dir' | 'file'): void {
  const isKind = kind === 'dir' ? st.isDirectory() : st.isFile()
  if (!isKind || st.uid !== process.geteuid!() || (st.mode & 0o077) !== 0) {
    throw broken(path, `not a ${kind === 'dir' ? '0700 directory' : '0600 file'} of the daemon's user`)
  }
}

function summaryOf (r: RunRecord): RunSummary {
  return { user: r.user, state: r.state, targets: Object.entries(r.targets).filter(e => e[1] !== undefined).map(([n, t]) => [n as TargetName, t!.state]) }
}

/** The complete lines of a segment, each a settled run record (a torn last line is left out). Pure. */
export function parseSegment (text: string, path: string): RunRecord[] {
  const lines = text.split('\n')
  lines.pop() // after the last newline: '' for a whole segment, a torn append's bytes otherwise
  return lines.map((line, i) => {
    let r: RunRecord
    try {
      r = JSON.parse(line) as RunRecord
    } catch {
      throw broken(path, `line ${i + 1} is not JSON`)
    }
    if (typeof r?.runId !== 'string' || typeof r.state !== 'string' || typeof r.version !== 'number' || typeof r.targets !== 'object' || r.targets === null || !isSettled(r)) {
      throw broken(path, `line ${i + 1} is not a settled run record`)
    }
    return r
  })
}

export function openRunArchive (dir: string): ArchiveWriter {
  let summaries: Map<string, RunSummary & { segment: string }> | null = null
  // Appends, prunes and the first load of the summaries one at a time (the ledger serialises its moves already).
  let queue: Promise<unknown> = Promise.resolve()
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = queue.then(fn, fn)
    queue = next.catch(() => {})
    return next
  }

  /** null: nothing archived yet */
  async function segments (): Promise<string[] | null> {
    let st: Stats
    try {
      st = await fsp.lstat(dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw broken(dir, (err as NodeJS.ErrnoException).code ?? 'EIO')
    }
    checkOwn(st, dir, 'dir')
    return (await fsp.readdir(dir)).filter(n => SEGMENT_RE.test(n)).sort()
  }

  async function readSegment (name: string): Promise<RunRecord[]> {
    const path = join(dir, name)
    let fh
    try {
      fh = await fsp.open(path, constants.O_RDONLY | constants.O_NOFOLLOW)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return [] // pruned meanwhile
      throw broken(path, code === 'ELOOP' ? 'a symlink' : code ?? 'EIO')
    }
    try {
      checkOwn(await fh.stat(), path, 'file')
      return parseSegment(await fh.readFile('utf8'), path)
    } finally {
      await fh.close()
    }
  }

  async function readAllNow (): Promise<Array<[string, RunRecord]>> {
    const out: Array<[string, RunRecord]> = []
    for (const name of await segments() ?? []) for (const r of await readSegment(name)) out.push([name, r])
    return out
  }

  // A read of 10,000 archived runs is a 7 MB parse on the daemon's thread: requests at once (or within SHARE_MS) share
  // one, so that a user repeating `runs list --all` or `runs show` cannot make the daemon parse it for each. Any append
  // or prune of this process starts a new generation: a reader that saw a run leave the hot set (after its append)
  // never gets a read from before it.
  let generation = 0
  let shared: { generation: number, rows: Promise<Array<[string, RunRecord]>> } | null = null
  async function readAll (): Promise<Array<[string, RunRecord]>> {
    if (shared !== null && shared.generation === generation) return await shared.rows
    const mine = { generation, rows: readAllNow() }
    shared = mine
    const drop = (): void => { if (shared === mine) shared = null }
    mine.rows.then(() => { setTimeout(drop, SHARE_MS).unref() }, drop)
    return await mine.rows
  }

  /** Open today's segment for appending, cutting off a torn append's bytes (their runs are still in runs.json). */
  async function openSegment (name: string): Promise<{ fh: fsp.FileHandle, created: boolean }> {
    const path = join(dir, name)
    let created = false
    let fh: fsp.FileHandle
    try {
      fh = await fsp.open(path, constants.O_RDWR | constants.O_APPEND | constants.O_NOFOLLOW)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code !== 'ENOENT') throw broken(path, code === 'ELOOP' ? 'a symlink' : code ?? 'EIO')
      fh = await fsp.open(path, constants.O_RDWR | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600)
      await fh.chmod(0o600)
      created = true
    }
    try {
      const st = await fh.stat()
      checkOwn(st, path, 'file')
      if (st.size > 0) {
        const one = Buffer.alloc(1)
        await fh.read(one, 0, 1, st.size - 1)
        if (one[0] !== NL) {
          const text = await fh.readFile()
          await fh.truncate(text.lastIndexOf(NL) + 1)
        }
      }
    } catch (err) {
      await fh.close()
      throw err
    }
    return { fh, created }
  }

  async function appendNow (runs: readonly RunRecord[], now: Date): Promise<void> {
    const st = await fsp.lstat(dir).catch(() => null)
    if (st === null) {
      await fsp.mkdir(dir, { mode: 0o700 })
      await fsp.chmod(dir, 0o700)
      await fsyncDir(join(dir, '..'))
    } else {
      checkOwn(st, dir, 'dir')
    }
    const name = `${now.toISOString().slice(0, 10)}.jsonl`
    const { fh, created } = await openSegment(name)
    try {
      await fh.writeFile(Buffer.from(runs.map(r => `${JSON.stringify(r)}\n`).join(''), 'utf8'))
      await fh.sync()
    } finally {
      await fh.close()
    }
    if (created) await fsyncDir(dir)
    generation++
    if (summaries !== null) for (const r of runs) summaries.set(r.runId, { ...summaryOf(r), segment: name })
  }

  return {
    async list () {
      const byId = new Map<string, RunRecord>()
      for (const [, r] of await readAll()) {
        byId.delete(r.runId)
        byId.set(r.runId, r)
      }
      return [...byId.values()]
    },
    async find (runId) {
      let found: RunRecord | undefined
      for (const [, r] of await readAll()) if (r.runId === runId) found = r
      return found
    },
    summaries: () => serial(async () => {
      if (summaries === null) {
        const loaded = new Map<string, RunSummary & { segment: string }>()
        for (const [segment, r] of await readAll()) loaded.set(r.runId, { ...summaryOf(r), segment })
        summaries = loaded
      }
      return summaries
    }),
    append: (runs, now) => serial(async () => {
      if (runs.length === 0) return
      try {
        await appendNow(runs, now)
      } catch (err) {
        // A coded error (a broken archive) as it is; a failed write (a full disk) as the state's other writes say it.
        if (isCoded(err)) throw err
        throw nfsError('NFS_ERR_STORAGE', [dir, (err as NodeJS.ErrnoException).code ?? 'EIO'], err)
      }
    }),
    prune: (horizon) => serial(async () => {
      let n = 0
      for (const name of await segments() ?? []) {
        // A segment of day D holds runs archived that day, so ended by its end: all past the horizon once D + 1 is.
        if (Date.parse(`${SEGMENT_RE.exec(name)![1]}T00:00:00Z`) + DAY_MS > horizon.getTime()) continue
        await fsp.unlink(join(dir, name))
        n++
        if (summaries !== null) for (const [id, s] of summaries) if (s.segment === name) summaries.delete(id)
      }
      if (n > 0) {
        generation++
        await fsyncDir(dir)
      }
      return n
    })
  }
}
