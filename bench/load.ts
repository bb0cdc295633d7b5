// A small load generator in place of autocannon (not a dependency of this project): undici Clients over a Unix
// socket, one connection each, pipelining 1, each sending its next GET as soon as the previous answer is read.
// Latency is per request, from write to the end of the body.
import { Client } from 'undici'
import { nowMs, summarize, type Summary } from './stats.js'

export interface LoadOptions {
  socket: string
  path: string
  connections: number
  durationMs: number
  /** requests before the clock starts (JIT, caches, connection set-up) */
  warmupMs?: number
}

export interface LoadResult {
  requestsPerSecond: number
  latency: Summary
  requests: number
  /** answers other than 200, and transport errors */
  errors: number
  samples: number[]
  elapsedMs: number
}

/** Two measurements of the same thing as one: rates over the total time, percentiles over all samples. */
export function mergeLoads (a: LoadResult, b: LoadResult): LoadResult {
  const samples = [...a.samples, ...b.samples]
  const elapsedMs = a.elapsedMs + b.elapsedMs
  return { requestsPerSecond: samples.length / (elapsedMs / 1000), latency: summarize(samples), requests: samples.length, errors: a.errors + b.errors, samples, elapsedMs }
}

export async function runLoad (o: LoadOptions): Promise<LoadResult> {
  const clients = Array.from({ length: o.connections }, () => new Client('http://localhost', { socketPath: o.socket, pipelining: 1, connections: 1 } as ConstructorParameters<typeof Client>[1]))
  const latencies: number[] = []
  let errors = 0
  let measuring = false
  let stopAt = Number.POSITIVE_INFINITY
  const worker = async (client: Client): Promise<void> => {
    while (nowMs() < stopAt) {
      const t = nowMs()
      try {
        const res = await client.request({ method: 'GET', path: o.path })
        await res.body.arrayBuffer()
        if (!measuring) continue
        if (res.statusCode !== 200) errors++
        else latencies.push(nowMs() - t)
      } catch {
        if (measuring) errors++
      }
    }
  }
  const start = nowMs()
  const warm = o.warmupMs ?? 500
  stopAt = start + warm + o.durationMs
  const running = clients.map(worker)
  await new Promise(resolve => setTimeout(resolve, warm))
  measuring = true
  const t0 = nowMs()
  await Promise.all(running)
  const elapsed = nowMs() - t0
  await Promise.all(clients.map(async c => await c.close()))
  return { requestsPerSecond: latencies.length / (elapsed / 1000), latency: summarize(latencies), requests: latencies.length, errors, samples: latencies, elapsedMs: elapsed }
}
