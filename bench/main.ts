// `npm run bench [-- --quick] [-- --only a,b]`: every figure beside its baseline measured in the same run, one
// table on stdout, bench/results/latest.json. Figures never fail: the exit code is 0 unless the harness broke.
import { mkdtempSync, rmSync } from 'node:fs'
import { loadavg, tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { apiFigures } from './api-bench.js'
import { awsFigures } from './aws-bench.js'
import { cliFigures } from './cli-bench.js'
import { clusterFigures } from './cluster-bench.js'
import { repoRoot, settle, startDaemon } from './daemon.js'
import { detectFigures, POLL_INTERVAL_MS, preparePollDirs } from './detect-bench.js'
import { formatTable, machineAtStart, writeResults, type Figure, type Results } from './report.js'
import { runsFigures } from './runs-bench.js'
import { scaleFigures } from './scale-bench.js'
import { seedState } from './seed.js'
import { idleRssFigures, startupFigures } from './startup-bench.js'
import { nowMs, round } from './stats.js'
import { readFigures } from './watch-read-bench.js'
import { readLedgerRuns } from '../daemon/store/run-ledger.js'

const SECTIONS = ['api', 'cli', 'runs', 'detect', 'reads', 'aws', 'startup', 'idle', 'scale', 'cluster'] as const
type Section = typeof SECTIONS[number]

const BIG_LEDGER_RUNS = 10_000
// A launch dir with this many runs in its history, armed beside the plain one (issue 18, December 4).
const LONG_HISTORY_LINES = 10_000

function plan (quick: boolean): Record<string, number | number[]> {
  return quick
    ? { apiMs: 1000, runSamples: 15, cliSamples: 5, detectSamples: 5, pollSamples: 2, startRepeats: 1, idleWaitMs: 1500, scaleSizes: [1, 1000], scaleSamples: 10, scaleStarts: 1, scaleIdleMs: 1000, awsRuns: 5, awsRevokes: 3 }
    : { apiMs: 8000, runSamples: 500, cliSamples: 20, detectSamples: 20, pollSamples: 10, startRepeats: 5, idleWaitMs: 5000, scaleSizes: [1, 1000, 10_000], scaleSamples: 100, scaleStarts: 5, scaleIdleMs: 5000, awsRuns: 10, awsRevokes: 10 }
}

function log (msg: string): void {
  process.stderr.write(`bench: ${msg}\n`)
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, only: { type: 'string' }, keep: { type: 'boolean' } } })
  const quick = values.quick === true
  const only = new Set((values.only ?? SECTIONS.join(',')).split(',').map(s => s.trim()) as Section[])
  const p = plan(quick)
  const machine = machineAtStart()
  const startedAt = new Date().toISOString()
  const t0 = nowMs()
  const dir = mkdtempSync(join(tmpdir(), 'nfs-bench-'))
  const figures: Figure[] = []
  const errors: Results['errors'] = []
  const section = async (name: Section, fn: () => Promise<Figure[]>): Promise<void> => {
    if (!only.has(name)) return
    const t = nowMs()
    log(`${name}...`)
    try {
      figures.push(...await fn())
    } catch (err) {
      errors.push({ section: name, error: (err as Error).stack ?? String(err) })
      log(`${name} failed: ${(err as Error).message}`)
    }
    log(`${name} done in ${round((nowMs() - t) / 1000, 1)} s (load ${loadavg()[0]!.toFixed(1)})`)
  }
  try {
    if (only.has('api') || only.has('cli') || only.has('runs') || only.has('detect')) {
      // One daemon for the API, POST /runs and detection: 1,000 secrets (20 of the user's own, 980 of a workspace)
      // and a polled watch root holding the launch dirs of the polling samples.
      const me = userInfo()
      const d = join(dir, 'main')
      const pollRoot = join(dir, 'polled')
      const pollDirs = preparePollDirs(pollRoot, p.pollSamples as number)
      seedState({ stateDir: join(d, 'state'), runsRoot: join(d, 'runs'), user: me.username, uid: me.uid, gid: me.gid, userSecrets: 20, workspaceSecrets: 980, runs: 0 })
      const daemon = await startDaemon(d, { config: { watch: [{ root: pollRoot, depth: 1, poll: true, intervalMs: POLL_INTERVAL_MS }] } })
      try {
        await section('api', async () => await apiFigures({ daemon, dir, durationMs: p.apiMs as number }))
        await section('cli', async () => await cliFigures({ daemon, samples: p.cliSamples as number }))
        await section('runs', async () => {
          // Beside it, a daemon whose runs.json was handed 10,000 ended runs (issue 18), given time to settle first.
          const bd = join(dir, 'main-big')
          seedState({ stateDir: join(bd, 'state'), runsRoot: join(bd, 'runs'), user: me.username, uid: me.uid, gid: me.gid, userSecrets: 20, workspaceSecrets: 980, runs: BIG_LEDGER_RUNS, runsIn: 'hot' })
          const big = await startDaemon(bd)
          try {
            await settle(big.pid)
            const hotAtStart = (await readLedgerRuns(join(big.stateDir, 'runs.json'))).length
            return await runsFigures({ daemon, dir, samples: p.runSamples as number, big: { daemon: big, runs: BIG_LEDGER_RUNS, hotAtStart }, longHistory: LONG_HISTORY_LINES })
          } finally {
            await big.stop()
          }
        })
        await section('detect', async () => await detectFigures({ daemon, dir, pollRoot, pollDirs, samples: p.detectSamples as number, pollSamples: p.pollSamples as number }))
      } finally {
        await daemon.stop()
      }
    }
    await section('reads', async () => await readFigures({ dir, dirs: quick ? 500 : 2000, rounds: quick ? 3 : 7 }))
    await section('aws', async () => await awsFigures({ dir, runs: p.awsRuns as number, rate: 40, revokes: p.awsRevokes as number }))
    await section('startup', async () => await startupFigures({ dir, repeats: p.startRepeats as number, runs: 10_000, secrets: 5000 }))
    await section('idle', async () => await idleRssFigures(dir, p.idleWaitMs as number))
    await section('scale', async () => await scaleFigures({ dir, sizes: p.scaleSizes as number[], samples: p.scaleSamples as number, starts: p.scaleStarts as number, idleMs: p.scaleIdleMs as number }))
    // A real 3-member etcd and several lease TTLs: not in --quick (run it with --only cluster).
    if (!quick || values.only !== undefined) await section('cluster', async () => await clusterFigures({ dir, samples: quick ? 20 : 200, takeovers: quick ? 1 : 3 }))
  } finally {
    if (values.keep !== true) rmSync(dir, { recursive: true, force: true })
  }
  machine.loadEnd = loadavg().map(l => round(l))
  const results: Results = { startedAt, quick, durationS: round((nowMs() - t0) / 1000, 1), machine, figures, errors }
  const out = join(repoRoot(), 'bench', 'results', 'latest.json')
  writeResults(out, results)
  process.stdout.write(`${formatTable(figures)}\n\n`)
  process.stdout.write(`${quick ? 'quick run' : 'full run'} in ${results.durationS} s on ${machine.cpus} cores, node ${machine.node}; load average ${machine.loadStart.join(' ')} at the start, ${machine.loadEnd.join(' ')} at the end\n`)
  for (const e of errors) process.stdout.write(`section ${e.section} did not run to its end: ${e.error.split('\n')[0]}\n`)
  process.stdout.write(`written: ${out}\n`)
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`)
  process.exit(1)
})
