// 3. API fuzz: 10,000 raw requests over the real socket (malformed JSON, wrong types, huge fields, odd encodings,
// unknown routes, random methods). The daemon must stay up, never answer 5xx, and give every error an NFS_ERR_*
// code in the SPEC's JSON shape. The requests come from the suite's seed: a failure names the request and the seed.
import type { Test } from 'tap'
import { mkdirSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { tempDir } from '../helpers/daemon.js'
import { expectStatus, revokeAllAndSettle, runDirs } from './api.js'
import { spawnDaemon } from './daemon-proc.js'
import { fuzzRequest, type FuzzRequest } from './fuzz-cases.js'
import { prng, type Harness } from './harness.js'

const REQUESTS = 10_000
const CONCURRENCY = 8
const CODE_RE = /^NFS_ERR_[A-Z_]+$/

interface Answer { status: number, headers: string, body: string, error: string | null }

/** The first response in what the server sent (a lying Content-Length can make it answer a second, bogus one). */
export function firstResponse (raw: Buffer): Omit<Answer, 'error'> {
  const split = raw.indexOf('\r\n\r\n')
  const head = (split === -1 ? raw : raw.subarray(0, split)).toString('latin1')
  const rest = split === -1 ? Buffer.alloc(0) : raw.subarray(split + 4)
  const length = /^content-length:\s*(\d+)/im.exec(head)?.[1]
  let body: string
  if (length !== undefined) body = rest.subarray(0, Number(length)).toString('utf8')
  else if (/^transfer-encoding:\s*chunked/im.test(head)) body = dechunk(rest.toString('utf8'))
  else body = rest.toString('utf8')
  return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0), headers: head, body }
}

/**
 * Send raw bytes and read until the server closes (every request says `Connection: close`). Only an incomplete
 * request is half-closed after it is written: a half-close tells a Node server to drop a response in progress.
 * A large body goes in slices and stops once the answer has begun, since a server that refuses early closes.
 */
function send (socket: string, req: FuzzRequest): Promise<Answer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let error: string | null = null
    const c = connect(socket)
    const timer = setTimeout(() => { error = 'timeout'; c.destroy() }, 60_000)
    c.on('data', (d: Buffer) => chunks.push(d))
    c.on('error', (err: NodeJS.ErrnoException) => { error ??= err.code ?? 'error' })
    c.on('close', () => {
      clearTimeout(timer)
      resolve({ ...firstResponse(Buffer.concat(chunks)), error })
    })
    const slices = Array.from({ length: Math.ceil(req.bytes.length / 65536) }, (_, i) => req.bytes.subarray(i * 65536, (i + 1) * 65536))
    const next = (): void => {
      const slice = slices.shift()
      if (slice === undefined || chunks.length > 0 || c.destroyed) {
        if (req.incomplete) c.end()
        return
      }
      c.write(slice, (err) => { if (err == null) next() })
    }
    next()
  })
}

function dechunk (text: string): string {
  let out = ''
  let rest = text
  for (;;) {
    const nl = rest.indexOf('\r\n')
    if (nl === -1) return out
    const size = parseInt(rest.slice(0, nl), 16)
    if (!Number.isFinite(size) || size === 0) return out
    out += rest.slice(nl + 2, nl + 2 + size)
    rest = rest.slice(nl + 2 + size + 2)
  }
}

/** What is wrong with one answer, or null when it keeps the contract. */
export function judge (req: FuzzRequest, a: Answer): string | null {
  // An incomplete request has no answer to give; a large body may be cut off by an early refusal, whose answer
  // the kernel then discards with the connection (EPIPE/ECONNRESET on our side).
  if (a.status === 0 && req.incomplete) return null
  if (a.status === 0 && req.bytes.length > 65536 && (a.error === 'EPIPE' || a.error === 'ECONNRESET')) return null
  if (a.status === 0) return `no HTTP answer (connection closed without a status line${a.error !== null ? ', ' + a.error : ''})`
  if (a.status >= 500) return `answered ${a.status}: ${a.body.slice(0, 200)}`
  if (a.status < 400 || req.method === 'HEAD') return null
  let body: { code?: unknown, statusCode?: unknown, message?: unknown }
  try {
    body = JSON.parse(a.body) as typeof body
  } catch {
    return `answered ${a.status} with a body that is not JSON: ${JSON.stringify(a.body.slice(0, 200))}`
  }
  if (typeof body.code !== 'string' || !CODE_RE.test(body.code)) return `answered ${a.status} without an NFS_ERR_* code: ${a.body.slice(0, 200)}`
  if (body.statusCode !== a.status) return `answered ${a.status} but the body says statusCode ${String(body.statusCode)}`
  if (typeof body.message === 'string' && /\n\s+at /.test(body.message)) return 'a stack trace in the message'
  return null
}

export async function fuzzSection (t: Test, h: Harness): Promise<void> {
  const dir = tempDir(t, 'nfs-chaos-fuzz-')
  const launchDir = join(dir, 'launch')
  mkdirSync(launchDir)
  const d = await spawnDaemon(t, { mode: 'user', dir, config: { logLevel: 'info' } })
  await h.listen(d.socket)
  const canary = h.canary('fuzz')
  await expectStatus(d.socket, 201, 'POST', '/api/v1/secrets', { name: 'FUZZ_A', value: canary })
  await expectStatus(d.socket, 201, 'POST', '/api/v1/workspaces', { name: 'fuzzws' })

  // A PRNG of the section's own, seeded from the suite's, so the requests do not depend on what ran before.
  const fuzzSeed = Math.floor(h.random() * 2 ** 31)
  t.comment(`fuzz seed ${fuzzSeed} (from suite seed ${h.seed})`)
  const random = prng(fuzzSeed)
  const failures: string[] = []
  const statuses = new Map<number, number>()
  let sent = 0
  const worker = async (): Promise<void> => {
    while (sent < REQUESTS) {
      const n = sent++
      const req = fuzzRequest(random, launchDir)
      const a = await send(d.socket, req)
      statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1)
      const wrong = judge(req, a)
      if (wrong !== null && failures.length < 50) failures.push(`#${n} ${req.label}: ${wrong}`)
      if (n % 1000 === 999 && (d.process.exitCode !== null || d.process.signalCode !== null)) failures.push(`#${n}: the daemon died`)
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  h.figures.requestsFuzzed += sent
  t.comment(`fuzz answers by status: ${[...statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}:${n}`).join(' ')}`)
  t.same(failures, [], `every answer of ${sent} kept the contract (seed ${fuzzSeed})`)
  t.equal(d.process.exitCode ?? d.process.signalCode, null, 'the daemon is still running')
  t.equal((await expectStatus<{ status?: string }>(d.socket, 200, 'GET', '/api/v1/health')) !== null, true, 'and answers /health')

  // Fuzzed bodies that were valid armed runs: they must be revocable like any other.
  const live = await revokeAllAndSettle(d.socket, d.stateDir)
  h.figures.runs += live
  t.same(runDirs(join(dir, 'runs')), [], 'the runs the fuzz armed are revoked and their dirs gone')
  await d.stop()
  h.captureDaemon('fuzz daemon', d)
}
