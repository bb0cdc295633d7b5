// A WebSocket client of GET /api/v1/runs/:id/attach over the daemon's real Unix socket, for launched-run tests:
// collects the output, waits for text, sends keystrokes and sizes, and reports the final exit message.
import WebSocket from 'ws'
import { readFileSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import type { RunView } from '../../daemon/runs/service.js'
import type { TestDaemon } from './daemon.js'

export interface ExitMessage { type: 'exit', state: string, exitCode: number | null, signal: string | null }

export interface AttachClient {
  ws: WebSocket
  output: () => string
  waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<void>
  type: (data: string) => void
  resize: (cols: number, rows: number) => void
  /** resolves with the exit message (null when closed without one) and the close code */
  closed: Promise<{ exit: ExitMessage | null, code: number }>
  detach: () => Promise<void>
}

interface Teardown { teardown: (fn: () => unknown) => void }

export function attachUrl (socket: string, runId: string): string {
  return `ws+unix://${socket}:/api/v1/runs/${encodeURIComponent(runId)}/attach`
}

/** Open an attach socket; rejects with the daemon's coded refusal `{status, code}` when the upgrade is refused. */
export function attachRun (t: Teardown, socket: string, runId: string): Promise<AttachClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(attachUrl(socket, runId))
    let text = ''
    let exit: ExitMessage | null = null
    t.teardown(() => ws.terminate())
    ws.on('message', (data, isBinary) => {
      const buf = Buffer.from(data as Buffer)
      if (isBinary) text += buf.toString('utf8')
      else {
        const m = JSON.parse(buf.toString('utf8')) as ExitMessage
        if (m.type === 'exit') exit = m
      }
    })
    const closed = new Promise<{ exit: ExitMessage | null, code: number }>(resolveClose => ws.on('close', (code) => resolveClose({ exit, code })))
    ws.on('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString() })
      res.on('end', () => reject(Object.assign(new Error(`attach refused: ${res.statusCode}`), { status: res.statusCode, code: (JSON.parse(body) as { code: string }).code })))
    })
    ws.on('error', reject)
    ws.on('open', () => resolve({
      ws,
      output: () => text,
      async waitFor (pattern, timeoutMs = 20_000) {
        const deadline = Date.now() + timeoutMs
        while (!pattern.test(text)) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${pattern}; got ${JSON.stringify(text.slice(-500))}`)
          await new Promise(resolve => setTimeout(resolve, 25))
        }
      },
      type: (data) => ws.send(JSON.stringify({ type: 'input', data })),
      resize: (cols, rows) => ws.send(JSON.stringify({ type: 'resize', cols, rows })),
      closed,
      async detach () {
        ws.close(1000)
        await closed
      }
    }))
  })
}

/** A JSON API call over the Unix socket as this process (root); resolves with status and parsed body. */
export function api<T = unknown> (socket: string, method: string, path: string, body?: unknown): Promise<{ status: number, body: T }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = request({ socketPath: socket, path: `/api/v1${path}`, method, headers: payload !== undefined ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = ''
      res.on('data', (c: Buffer) => { text += c.toString('utf8') })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: (text === '' ? undefined : JSON.parse(text)) as T }))
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/** Poll until `check` returns a value (not undefined), or fail after timeoutMs. */
export async function eventually<T> (check: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

export const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

/** A process that exists and is not a zombie. */
export function alive (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !/\) [ZX] /.test(stat)
  } catch {
    return false
  }
}

/** POST a launch as this process (root); the runId. */
export async function launch (daemon: TestDaemon, launchDir: string, command: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await api<{ runId: string, code?: string }>(daemon.socket, 'POST', '/runs', { mode: 'launch', launchDir, command, env: { PATH, ...env }, cols: 80, rows: 24 })
  if (r.status !== 201) throw new Error(`launch refused: ${JSON.stringify(r.body)}`)
  return r.body.runId
}

export async function run (daemon: TestDaemon, runId: string): Promise<RunView> {
  return (await api<RunView>(daemon.socket, 'GET', `/runs/${runId}`)).body
}

export function script (dir: string, name: string, text: string): string {
  const p = join(dir, name)
  writeFileSync(p, text, { mode: 0o755 })
  return p
}
