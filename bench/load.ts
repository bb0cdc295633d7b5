// The load of the API figures: autocannon (the generator issue 8 names) over the Unix socket, 10 connections,
// pipelining 1, after a warm-up that is not counted. autocannon runs in a worker thread of its own (this file is
// also the worker's entry), so that its event loop and GC share nothing with the bench's: the client is the
// floor of every p99 here, and a client that waits on the bench's own work would inflate the daemon's and the
// baseline's figures alike.
// Latency is taken per request from autocannon's `response` event (process.hrtime from the write to the end of the
// body, in fractional ms), not from its result histogram: that one records integer milliseconds (truncated), too
// coarse for a 10 ms target. Percentiles are then nearest-rank as everywhere in the bench (stats.ts).
import type { EventEmitter } from 'node:events'
import { createRequire } from 'node:module'
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads'
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
  /** 2xx answers inside the measured window */
  requests: number
  /** answers other than 2xx, connection errors and timeouts */
  errors: number
  samples: number[]
  elapsedMs: number
}

// The part of autocannon's API used here (the package ships no types).
interface CannonOptions { url: string, socketPath: string, connections: number, pipelining: number, duration: number, sampleInt: number, timeout: number }
interface CannonResult { errors: number, mismatches: number }
type Cannon = (o: CannonOptions, cb: (err: Error | null, r: CannonResult) => void) => EventEmitter

const LOAD_JOB = 'nfs-bench-load'

/** Two measurements of the same thing as one: rates over the total time, percentiles over all samples. */
export function mergeLoads (a: LoadResult, b: LoadResult): LoadResult {
  const samples = [...a.samples, ...b.samples]
  const elapsedMs = a.elapsedMs + b.elapsedMs
  return { requestsPerSecond: samples.length / (elapsedMs / 1000), latency: summarize(samples), requests: samples.length, errors: a.errors + b.errors, samples, elapsedMs }
}

function cannonOptions (o: LoadOptions, durationMs: number): CannonOptions {
  // sampleInt: autocannon ends a run on the first sampling tick after `duration`; 100 ms keeps the overshoot small.
  return { url: `http://localhost${o.path}`, socketPath: o.socket, connections: o.connections, pipelining: 1, duration: durationMs / 1000, sampleInt: 100, timeout: 10 }
}

async function fire (cannon: Cannon, opts: CannonOptions, onResponse?: (status: number, ms: number) => void): Promise<CannonResult> {
  return await new Promise((resolve, reject) => {
    const instance = cannon(opts, (err, r) => { if (err !== null) reject(err); else resolve(r) })
    if (onResponse !== undefined) instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => { onResponse(status, ms) })
  })
}

/** One load in this thread: a warm-up run whose answers are dropped, then the measured run. */
async function loadHere (o: LoadOptions): Promise<LoadResult> {
  const cannon = createRequire(import.meta.url)('autocannon') as Cannon
  await fire(cannon, cannonOptions(o, o.warmupMs ?? 500))
  const samples: number[] = []
  let non2xx = 0
  const t0 = nowMs()
  const r = await fire(cannon, cannonOptions(o, o.durationMs), (status, ms) => {
    if (status >= 200 && status < 300) samples.push(ms)
    else non2xx++
  })
  const elapsedMs = nowMs() - t0
  // autocannon's `errors` already holds its timeouts; answers during the warm-up do not count, as their times do not.
  const errors = r.errors + r.mismatches + non2xx
  return { requestsPerSecond: samples.length / (elapsedMs / 1000), latency: summarize(samples), requests: samples.length, errors, samples, elapsedMs }
}

/** One load from a fresh worker thread running autocannon; resolves with the result the worker posts. */
export async function runLoad (o: LoadOptions): Promise<LoadResult> {
  const worker = new Worker(new URL(import.meta.url), { workerData: { job: LOAD_JOB, options: o } })
  return await new Promise((resolve, reject) => {
    worker.once('message', (m: LoadResult) => {
      resolve(m)
      // Nothing is left to wait for; ending the worker here means a stray timer in the client cannot hold the bench.
      void worker.terminate()
    })
    worker.once('error', reject)
    // After a result or an error this settles nothing; otherwise it is the only word of a worker that died mute.
    worker.once('exit', code => { reject(new Error(`load worker exited with code ${code} and no result`)) })
  })
}

const job = workerData as { job?: string, options?: LoadOptions } | null
if (!isMainThread && job?.job === LOAD_JOB && job.options !== undefined && parentPort !== null) {
  const port = parentPort
  // A failure rejects unhandled, which ends the worker with an 'error' event that runLoad turns into its rejection.
  void loadHere(job.options).then(r => { port.postMessage(r) })
}
