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

interface Answer { status: number, headers: string, body: string }

/** Send raw bytes, read until the server closes; null status when it closed without a status line. */
function send (socket: string, bytes: Buffer): Promise<Answer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    const c = connect(socket)
    const timer = setTimeout(() => c.destroy(), 20_000)
    c.on('data', (d: Buffer) => chunks.push(d))
    c.on('error', () => {})
    c.on('close', () => {
      clearTimeout(timer)
      const raw = Buffer.concat(chunks).toString('utf8')
      const split = raw.indexOf('\r\n\r\n')
      const head = split === -1 ? raw : raw.slice(0, split)
      let body = split === -1 ? '' : raw.slice(split + 4)
      if (/^transfer-encoding:\s*chunked/im.test(head)) body = dechunk(body)
      resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0), headers: head, body })
    })
    // A server may answer and close before the whole request is written (a body over the limit): that is fine.
    c.write(bytes, () => { c.end() })
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
  if (a.status === 0) return 'no HTTP answer (connection closed without a status line)'
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
  h.listen(d.socket)
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
      const a = await send(d.socket, req.bytes)
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
