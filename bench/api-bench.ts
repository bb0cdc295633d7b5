// API figures: GET /secrets and /secrets/resolve over the Unix socket with 1,000 secrets in the store, against the
// ceiling: a bare node:http server on the same kind of socket answering the daemon's own bytes for that path
// (bare-server.ts), both loaded alike: autocannon in a worker thread (load.ts), 10 connections, pipelining 1, a fresh
// warm-up before each measured half.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { callJson, type BenchDaemon } from './daemon.js'
import { mergeLoads, runLoad, type LoadResult } from './load.js'
import { ratio, type Figure } from './report.js'
import { BENCH_WORKSPACE } from './seed.js'

export interface ApiOptions { daemon: BenchDaemon, dir: string, durationMs: number }

async function startBare (socket: string, bodyFile: string): Promise<() => Promise<void>> {
  const script = join(dirname(fileURLToPath(import.meta.url)), 'bare-server.js')
  const child = spawn(process.execPath, [script, socket, bodyFile], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.setEncoding('utf8')
  while (!out.includes('ready')) {
    const [chunk] = await Promise.race([once(child.stdout, 'data'), once(child, 'exit').then(() => { throw new Error('bare-server exited') })]) as [string]
    out += chunk
  }
  return async () => {
    if (child.exitCode !== null) return
    child.kill('SIGTERM')
    await once(child, 'exit')
  }
}

function figuresFor (name: string, d: LoadResult, b: LoadResult): Figure[] {
  const r = ratio(d.requestsPerSecond, b.requestsPerSecond)
  const errors = d.errors + b.errors
  return [
    { figure: `${name} req/s`, value: d.requestsPerSecond, baselineLabel: 'bare node:http, same bytes', baseline: b.requestsPerSecond, ratio: r, target: 'ratio >= 0.7', met: r >= 0.7 && errors === 0, ...(errors > 0 ? { note: `${d.errors} daemon and ${b.errors} baseline errors` } : {}) },
    { figure: `${name} p99 ms`, value: d.latency.p99, baselineLabel: 'bare node:http p99', baseline: b.latency.p99, ratio: ratio(d.latency.p99, b.latency.p99), target: 'p99 < 5 ms', met: d.latency.p99 < 5 }
  ]
}

export async function apiFigures (o: ApiOptions): Promise<Figure[]> {
  const out: Figure[] = []
  const paths: Array<[string, string]> = [
    ['GET /secrets (1,000)', `/api/v1/secrets?workspace=${BENCH_WORKSPACE}`],
    ['GET /secrets/resolve (1,000)', `/api/v1/secrets/resolve?workspace=${BENCH_WORKSPACE}`]
  ]
  for (const [name, path] of paths) {
    const sample = await callJson(o.daemon.socket, 'GET', path)
    if (sample.status !== 200) throw new Error(`${path} answered ${sample.status}: ${JSON.stringify(sample.body).slice(0, 300)}`)
    // The daemon's bytes as it sends them (its cached body), not a re-serialisation of the parsed JSON.
    const bodyFile = join(o.dir, `bare-body-${out.length}.json`)
    writeFileSync(bodyFile, sample.raw)
    const bareSocket = join(o.dir, `bare-${out.length}.sock`)
    const stopBare = await startBare(bareSocket, bodyFile)
    try {
      // Alternate the two so that a burst of load from elsewhere on the machine hits both alike.
      const half = o.durationMs / 2
      const d1 = await runLoad({ socket: o.daemon.socket, path, connections: 10, durationMs: half })
      const b1 = await runLoad({ socket: bareSocket, path, connections: 10, durationMs: half })
      const d2 = await runLoad({ socket: o.daemon.socket, path, connections: 10, durationMs: half, warmupMs: 100 })
      const b2 = await runLoad({ socket: bareSocket, path, connections: 10, durationMs: half, warmupMs: 100 })
      out.push(...figuresFor(name, mergeLoads(d1, d2), mergeLoads(b1, b2)))
    } finally {
      await stopBare()
    }
  }
  return out
}
