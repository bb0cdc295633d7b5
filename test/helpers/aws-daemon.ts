// Shared by the end-to-end tests of the aws target through a real daemon: the daemon's aws config for moto, the
// credentials the SDK's default chain reads from the environment, and JSON requests over the daemon's socket
// (for setting up many secrets quickly; the CLI is what the tests themselves exercise).
import { randomBytes } from 'node:crypto'
import { request } from 'node:http'
import { MOTO_REGION, listAll, type MotoSecret } from './moto.js'

/** The SDK's default chain reads these; the daemon is never handed credentials in its config. */
export const AWS_ENV = { AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test' }

export function awsConfig (endpoint: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { aws: { region: MOTO_REGION, endpoint, ...extra }, runs: { livenessIntervalMs: 300, revokeRetryInitialMs: 100, revokeRetryMaxMs: 1000 } }
}

/** One JSON request over a Unix socket as this process; resolves with the status and the parsed body. */
export function socketJson<T = unknown> (socket: string, method: string, path: string, body?: unknown): Promise<{ status: number, body: T }> {
  const payload = body === undefined ? undefined : JSON.stringify(body)
  return new Promise((resolve, reject) => {
    const req = request({
      socketPath: socket,
      method,
      path,
      timeout: 30_000,
      headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        resolve({ status: res.statusCode ?? 0, body: (text === '' ? null : JSON.parse(text)) as T })
      })
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end(payload)
  })
}

/** Adds `count` user secrets named S01..Snn with random values; returns name -> value (the test's canaries). */
export async function addSecrets (socket: string, count: number, prefix = 'S'): Promise<Map<string, string>> {
  const values = new Map<string, string>()
  for (let i = 1; i <= count; i++) {
    const name = `${prefix}${String(i).padStart(2, '0')}`
    const value = `canary-${name}-${randomBytes(8).toString('hex')}`
    const res = await socketJson(socket, 'POST', '/api/v1/secrets', { name, value })
    if (res.status !== 201 && res.status !== 200) throw new Error(`adding ${name} answered ${res.status}: ${JSON.stringify(res.body)}`)
    values.set(name, value)
  }
  return values
}

export function tagsOf (s: MotoSecret): Record<string, string> {
  return Object.fromEntries((s.Tags ?? []).map(t => [t.Key, t.Value]))
}

/** Polls moto until `ok` holds for its secrets (deletions planned included); returns them. */
export async function waitForMoto (endpoint: string, ok: (all: MotoSecret[]) => boolean, timeoutMs = 20_000): Promise<MotoSecret[]> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const all = await listAll(endpoint, true)
    if (ok(all)) return all
    if (Date.now() > deadline) throw new Error(`moto did not reach the expected state; it holds: ${all.map(s => s.Name).join(', ')}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}
