// JSON calls over the daemon's Unix socket as this process (root), and the small polling and ledger readers the
// sections share. Unlike the e2e helpers, a reply that is not JSON is returned as text rather than thrown, since
// the suite is looking precisely for answers that break the contract.
import { existsSync, readdirSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { ledgerOnDisk } from '../helpers/ledger-file.js'

export interface Reply<T = unknown> { status: number, body: T, text: string }

export function call<T = any> (socket: string, method: string, path: string, body?: unknown, timeoutMs = 60_000): Promise<Reply<T>> {
  const payload = body === undefined ? undefined : JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = request({
      socketPath: socket,
      method,
      path,
      timeout: timeoutMs,
      headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', reject)
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let parsed: unknown = null
        try { parsed = text === '' ? null : JSON.parse(text) } catch {}
        resolve({ status: res.statusCode ?? 0, body: parsed as T, text })
      })
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end(payload)
  })
}

/** Throws with the reply when the status is not the expected one; returns the body. */
export async function expectStatus<T = any> (socket: string, status: number | number[], method: string, path: string, body?: unknown): Promise<T> {
  const r = await call<T>(socket, method, path, body)
  const ok = Array.isArray(status) ? status.includes(r.status) : r.status === status
  if (!ok) throw new Error(`${method} ${path} answered ${r.status}: ${r.text.slice(0, 300)}`)
  return r.body
}

export async function waitUntil (what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 60_000, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(everyMs)
  }
}

export interface LedgerRun {
  runId: string
  user: string
  state: string
  names: string[]
  targets: Record<string, { state: string } | undefined>
}

export function readLedger (stateDir: string): LedgerRun[] {
  return ledgerOnDisk(stateDir).runs as unknown as LedgerRun[]
}

export const TERMINAL = new Set(['completed', 'failed', 'killed', 'expired'])

/** A run is done when it is terminal and every target it touched is revoked. */
export function settled (r: LedgerRun): boolean {
  return TERMINAL.has(r.state) && Object.values(r.targets).every(x => x === undefined || x.state === 'revoked')
}

/** Every run dir under an hpc runs root (`<root>/<user>/<runId>`). */
export function runDirs (runsRoot: string): string[] {
  if (!existsSync(runsRoot)) return []
  return readdirSync(runsRoot).flatMap(u => readdirSync(join(runsRoot, u)).map(r => `${u}/${r}`))
}

/** Secret metadata without lastUsed, which a run legitimately changes. */
export function stableMeta (metas: Array<Record<string, unknown>>): string[] {
  return metas.map(({ lastUsed: _l, ...rest }) => JSON.stringify(rest)).sort()
}

/** Revoke every run still live (as root, an admin), then wait until the ledger says every target is revoked. */
export async function revokeAllAndSettle (socket: string, stateDir: string, timeoutMs = 120_000): Promise<number> {
  const runs = await expectStatus<Array<{ runId: string, state: string }>>(socket, 200, 'GET', '/api/v1/runs?all=true')
  const live = runs.filter(r => !TERMINAL.has(r.state))
  for (const r of live) await expectStatus(socket, 200, 'DELETE', `/api/v1/runs/${r.runId}`)
  await waitUntil('every run revoked in the ledger', () => readLedger(stateDir).every(settled), timeoutMs, 200)
  return live.length
}
