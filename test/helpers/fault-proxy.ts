// An HTTP proxy of the tests' own between the SDK and moto. It injects what a busy AWS account does to a client
// (throttling, 5xx, slow answers, connections cut before or after the upstream acted) and counts the requests
// that arrive in each wall-clock second, which is how AWS enforces its per-second quota.
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { prng } from './prng.js'

// `invalid-request` is AWS's answer to creating a name that is scheduled for deletion (moto says
// ResourceExistsException instead), so the tests can walk the AWS path against moto.
export type Fault = 'throttle' | 'server-error' | 'denied' | 'invalid-request' | 'drop-before' | 'drop-after'
type ErrorFault = 'throttle' | 'server-error' | 'denied' | 'invalid-request'

export interface FaultRates {
  throttle?: number
  serverError?: number
  /** cut the connection without forwarding: the call did not happen */
  dropBefore?: number
  /** forward, then cut the connection instead of answering: the call happened but the client cannot know */
  dropAfter?: number
  /** added before forwarding, uniform between the two bounds */
  latencyMs?: [number, number]
}

/** Decides a fault for one request from its operation and JSON body; undefined falls through to the rates. */
export type FaultRule = (op: string, body: Record<string, unknown>, headers: IncomingHttpHeaders) => Fault | undefined

export interface FaultProxy {
  endpoint: string
  setRates (rates: FaultRates): void
  setRule (rule: FaultRule | undefined): void
  /** requests that arrived, by operation (faulted ones included) */
  byOp (): Record<string, number>
  injected (): Record<Fault, number>
  /** the most requests that arrived within one wall-clock second */
  maxPerSecond (): number
  close (): Promise<void>
}

interface Teardown { teardown (fn: () => unknown): void }

const ERRORS: Record<ErrorFault, { status: number, type: string }> = {
  throttle: { status: 400, type: 'ThrottlingException' },
  'server-error': { status: 500, type: 'InternalServiceError' },
  denied: { status: 400, type: 'AccessDeniedException' },
  'invalid-request': { status: 400, type: 'InvalidRequestException' }
}

function answerError (res: ServerResponse, fault: ErrorFault): void {
  const { status, type } = ERRORS[fault]
  const body = JSON.stringify({ __type: type, message: `injected ${fault}` })
  res.writeHead(status, {
    'content-type': 'application/x-amz-json-1.1',
    'content-length': Buffer.byteLength(body),
    'x-amzn-requestid': `fault-${Date.now()}`,
    'x-amzn-errortype': `${type}:http://internal.amazon.com/coral/com.amazon.coral.service/`
  })
  res.end(body)
}

async function readBody (req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

export async function startFaultProxy (t: Teardown, upstream: string, opts: { seed?: number, rates?: FaultRates } = {}): Promise<FaultProxy> {
  const target = new URL(upstream)
  const random = prng(opts.seed ?? 1)
  let rates: FaultRates = opts.rates ?? {}
  let rule: FaultRule | undefined
  const perSecond = new Map<number, number>()
  const ops: Record<string, number> = {}
  const injected: Record<Fault, number> = { throttle: 0, 'server-error': 0, denied: 0, 'invalid-request': 0, 'drop-before': 0, 'drop-after': 0 }

  function pick (op: string, body: Record<string, unknown>, headers: IncomingHttpHeaders): Fault | undefined {
    const ruled = rule?.(op, body, headers)
    if (ruled !== undefined) return ruled
    let r = random()
    for (const [fault, rate] of [['throttle', rates.throttle], ['server-error', rates.serverError],
      ['drop-before', rates.dropBefore], ['drop-after', rates.dropAfter]] as Array<[Fault, number | undefined]>) {
      if (rate !== undefined && r < rate) return fault
      r -= rate ?? 0
    }
    return undefined
  }

  async function forward (req: IncomingMessage, body: Buffer): Promise<{ status: number, headers: Record<string, string | string[] | undefined>, body: Buffer }> {
    return await new Promise((resolve, reject) => {
      const up = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (res) => {
        readBody(res).then((b) => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: b }), reject)
      })
      up.once('error', reject)
      up.end(body)
    })
  }

  const server = createServer((req, res) => {
    const second = Math.floor(Date.now() / 1000)
    perSecond.set(second, (perSecond.get(second) ?? 0) + 1)
    void (async () => {
      const raw = await readBody(req)
      const op = String(req.headers['x-amz-target'] ?? '').split('.').pop() ?? ''
      ops[op] = (ops[op] ?? 0) + 1
      let parsed: Record<string, unknown> = {}
      try { parsed = JSON.parse(raw.toString() || '{}') as Record<string, unknown> } catch {}
      const fault = pick(op, parsed, req.headers)
      if (fault !== undefined) injected[fault]++
      if (rates.latencyMs !== undefined) {
        const [lo, hi] = rates.latencyMs
        await sleep(lo + random() * (hi - lo))
      }
      if (fault === 'drop-before') { req.socket.destroy(); return }
      if (fault !== undefined && fault in ERRORS) { answerError(res, fault as ErrorFault); return }
      const out = await forward(req, raw)
      if (fault === 'drop-after') { req.socket.destroy(); return }
      // Hop-by-hop headers belong to the upstream connection, not to this one.
      const headers = { ...out.headers }
      for (const h of ['connection', 'keep-alive', 'transfer-encoding']) delete headers[h]
      res.writeHead(out.status, headers)
      res.end(out.body)
    })().catch(() => { req.socket.destroy() })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const addr = server.address()
  if (typeof addr !== 'object' || addr === null) throw new Error('proxy has no address')

  const close = async (): Promise<void> => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  t.teardown(close)

  return {
    endpoint: `http://127.0.0.1:${addr.port}`,
    setRates: (r) => { rates = r },
    setRule: (r) => { rule = r },
    byOp: () => ({ ...ops }),
    injected: () => ({ ...injected }),
    maxPerSecond: () => Math.max(0, ...perSecond.values()),
    close
  }
}
