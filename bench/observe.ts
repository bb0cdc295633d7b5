// What the benchmark watches from outside the daemon: its event stream (GET /events over the socket, each event
// stamped on arrival) and a run dir disappearing from disk (inotify on its parent, with a short poll behind it).
import { existsSync, watch } from 'node:fs'
import { dirname } from 'node:path'
import WebSocket from 'ws'
import { nowMs } from './stats.js'

export class EventTracker {
  readonly #seen = new Map<string, number>()
  readonly #waiters = new Map<string, Array<(t: number) => void>>()
  readonly #ws: WebSocket

  private constructor (ws: WebSocket) {
    this.#ws = ws
    ws.on('message', (data) => {
      const t = nowMs()
      let e: { type?: string, runId?: string }
      try { e = JSON.parse(String(data)) } catch { return }
      if (e.type === undefined || e.runId === undefined) return
      const key = `${e.runId} ${e.type}`
      if (!this.#seen.has(key)) this.#seen.set(key, t)
      for (const w of this.#waiters.get(key) ?? []) w(t)
      this.#waiters.delete(key)
    })
  }

  static async open (socket: string): Promise<EventTracker> {
    const ws = new WebSocket(`ws+unix://${socket}:/api/v1/events`)
    await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject) })
    return new EventTracker(ws)
  }

  /** When the event arrived (nowMs); rejects after the timeout. */
  waitFor (runId: string, type: string, timeoutMs = 30_000): Promise<number> {
    const key = `${runId} ${type}`
    const seen = this.#seen.get(key)
    if (seen !== undefined) return Promise.resolve(seen)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${type} for run ${runId} within ${timeoutMs} ms`)), timeoutMs)
      const list = this.#waiters.get(key) ?? []
      list.push((t) => { clearTimeout(timer); resolve(t) })
      this.#waiters.set(key, list)
    })
  }

  close (): void {
    this.#ws.close()
  }
}

/** Resolves with nowMs() at the moment `path` is gone: inotify on its parent, a 5 ms poll as the safety net. */
export function waitGone (path: string, timeoutMs = 30_000): Promise<number> {
  return new Promise((resolve, reject) => {
    let done = false
    const finish = (err?: Error): void => {
      if (done) return
      done = true
      const t = nowMs()
      clearInterval(poll)
      clearTimeout(timer)
      watcher?.close()
      if (err !== undefined) reject(err)
      else resolve(t)
    }
    const check = (): void => { if (!existsSync(path)) finish() }
    let watcher: ReturnType<typeof watch> | undefined
    try {
      watcher = watch(dirname(path), check)
    } catch {}
    const poll = setInterval(check, 5)
    const timer = setTimeout(() => finish(new Error(`${path} still there after ${timeoutMs} ms`)), timeoutMs)
    check()
  })
}

/** The inotify floor: how long after a write returns this process hears of it through fs.watch on the dir. */
export function inotifyProbe (dir: string): { armed: () => void, delay: () => Promise<number> } {
  let t0 = 0
  let resolveDelay: (ms: number) => void = () => {}
  const delay = new Promise<number>(resolve => { resolveDelay = resolve })
  const w = watch(dir, () => {
    if (t0 === 0) return
    resolveDelay(nowMs() - t0)
    w.close()
  })
  return { armed: () => { t0 = nowMs() }, delay: async () => await Promise.race([delay, new Promise<number>(resolve => setTimeout(() => { w.close(); resolve(Number.NaN) }, 2000))]) }
}
