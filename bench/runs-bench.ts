// POST /runs (arm, target hpc, 20 secrets, durable) one at a time, against the floor: writing the daemon's own
// store.json once with write+fsync+rename (+ the dir fsync), through the same writeFileAtomic the store uses, into a
// dir on the same filesystem. A run's creation writes the ledger twice (the intent, then `provisioned`: since December 3
// each one line of runs.journal and one fdatasync, cheaper than the floor), the run's store file and an audit line
// (fsync'd beside `provisioned`); the target allows 2.5 floors.
// The two are measured in turn, one arm then one floor write, so that a burst of disk or CPU load from elsewhere on
// the machine hits both alike (measured one after the other, the floor could be taken in a quiet second and the
// arms in a busy one, or the reverse). Enough samples that p99 is a percentile, not the single slowest request.
import { mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomic } from '../daemon/store/atomic-file.js'
import { callJson, type BenchDaemon } from './daemon.js'
import { LongHistory, prepareLaunchDir } from './nextflow-files.js'
import { ratio, type Figure } from './report.js'
import { userSecretNames } from './seed.js'
import { nowMs, round, summarize } from './stats.js'

export interface RunsOptions {
  daemon: BenchDaemon
  dir: string
  samples: number
  /**
   * a second daemon like the first whose ledger was handed 10,000 ended runs (issue 18: every ledger write rewrote
   * them all): armed in turn with the first, so the two p50/p99 compare under the same load
   */
  big?: { daemon: BenchDaemon, runs: number, hotAtStart: number }
  /**
   * history lines of a launch dir armed on the rounds the big ledger's daemon sits out (issue 18: the arm's history
   * mark read the whole file, 17-32 ms at 10,000 lines); 0: none
   */
  longHistory?: number
}

/** One arm, timed; its revoke outside the clock, so runs do not pile up in the monitor's pass. */
async function arm (daemon: BenchDaemon, launchDir: string, names: string[], prepared = false): Promise<number> {
  if (!prepared) {
    mkdirSync(launchDir, { recursive: true })
    prepareLaunchDir(launchDir)
  }
  const t = nowMs()
  const r = await callJson(daemon.socket, 'POST', '/api/v1/runs', { mode: 'arm', launchDir, targets: ['hpc'], only: names })
  const ms = nowMs() - t
  if (r.status !== 201) throw new Error(`POST /runs answered ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`)
  if ((r.body as { secrets: string[] }).secrets.length !== 20) throw new Error('the run did not get its 20 secrets')
  await callJson(daemon.socket, 'DELETE', `/api/v1/runs/${(r.body as { runId: string }).runId}`)
  return ms
}

export async function runsFigures (o: RunsOptions): Promise<Figure[]> {
  const names = userSecretNames(20)
  const storeText = readFileSync(join(o.daemon.stateDir, 'store.json'))
  const floorDir = join(o.dir, 'floor')
  mkdirSync(floorDir, { recursive: true, mode: 0o700 })
  const created: number[] = []
  const floor: number[] = []
  const big: number[] = []
  const long: number[] = []
  const history = (o.longHistory ?? 0) > 0 ? new LongHistory(join(o.dir, 'post-runs-long'), o.longHistory!) : null
  for (let i = 0; i < o.samples + 3; i++) {
    // With a big ledger, its daemon arms on every other round (its figure is a p50: half the arms are plenty, and the
    // full run stays under 5 minutes with 500 rounds), going first on every other one of those.
    const withBig = o.big !== undefined && i % 2 === 0
    const bigFirst = withBig && i % 4 === 2
    const b1 = bigFirst ? await arm(o.big!.daemon, join(o.dir, 'post-runs-big', `l${i}`), names) : null
    const ms = await arm(o.daemon, join(o.dir, 'post-runs', `l${i}`), names)
    const b2 = withBig && !bigFirst ? await arm(o.big!.daemon, join(o.dir, 'post-runs-big', `l${i}`), names) : null
    // The long history's arm on the other rounds, after the plain one (the big ledger's goes first on half of its own).
    const l = history !== null && i % 2 === 1 ? await arm(o.daemon, history.dir, names, true) : null
    if (l !== null) history!.next()
    const t = nowMs()
    await writeFileAtomic(join(floorDir, 'store.json'), storeText, 0o600)
    const f = nowMs() - t
    // The first few warm the JIT and the caches; they are not counted.
    if (i < 3) continue
    created.push(ms)
    floor.push(f)
    const b = b1 ?? b2
    if (b !== null) big.push(b)
    if (l !== null) long.push(l)
  }
  // For the record, the floor as the bench used to take it: written back to back after the arms, each write following
  // another of the same file on an otherwise idle disk (its best case; the arms never get that disk).
  const alone: number[] = []
  for (let i = 0; i < Math.min(o.samples, 60) + 3; i++) {
    const t = nowMs()
    await writeFileAtomic(join(floorDir, 'store.json'), storeText, 0o600)
    if (i >= 3) alone.push(nowMs() - t)
  }
  const c = summarize(created)
  const f = summarize(floor)
  const a = summarize(alone)
  const bigFigures: Figure[] = []
  if (o.big !== undefined) {
    const g = summarize(big)
    const note = `${g.n} arms, every other round, in turn with the empty ledger's (same 1,000 secrets); the ${o.big.runs} runs ended an hour ago, seeded in runs.json; at the first arm runs.json held ${o.big.hotAtStart} of them (the others moved to runs-archive/ by the daemon's first pass)`
    bigFigures.push(
      { figure: `POST /runs arm with ${o.big.runs} ended runs p50 ms`, value: g.p50, baselineLabel: 'the same arm, empty ledger, p50', baseline: c.p50, ratio: ratio(g.p50, c.p50), target: '< 1.15 x empty', met: g.p50 < 1.15 * c.p50, note },
      { figure: `POST /runs arm with ${o.big.runs} ended runs p99 ms`, value: g.p99, baselineLabel: 'the same arm, empty ledger, p99', baseline: c.p99, ratio: ratio(g.p99, c.p99), target: 'reported', met: null })
  }
  if (history !== null) {
    const h = summarize(long)
    const note = `${h.n} arms, every other round, each after a plain one in a launch dir of 1 line; after each, one more run played into the history as Nextflow writes it (its start appended, the file written again with it ended); ${Math.round(history.bytes / 1024)} KiB at the end`
    bigFigures.push(
      { figure: `POST /runs arm, launch dir history of ${o.longHistory!} runs p50 ms`, value: h.p50, baselineLabel: 'the same arm, history of 1 line, p50', baseline: c.p50, ratio: ratio(h.p50, c.p50), target: '< 1.15 x 1 line', met: h.p50 < 1.15 * c.p50, note },
      { figure: `POST /runs arm, launch dir history of ${o.longHistory!} runs p99 ms`, value: h.p99, baselineLabel: 'the same arm, history of 1 line, p99', baseline: c.p99, ratio: ratio(h.p99, c.p99), target: 'reported', met: null })
  }
  return [
    ...bigFigures,
    { figure: 'POST /runs arm hpc 20 secrets p50 ms', value: c.p50, baselineLabel: 'store.json write+fsync+rename p50', baseline: f.p50, ratio: ratio(c.p50, f.p50), target: '-', met: null },
    { figure: 'POST /runs arm hpc 20 secrets p99 ms', value: c.p99, baselineLabel: 'store.json write+fsync+rename p99', baseline: f.p99, ratio: ratio(c.p99, f.p99), target: 'p99 < 2.5 x floor', met: c.p99 < 2.5 * f.p99, note: `${c.n} requests and floor writes in turn, store.json ${Math.round(storeText.length / 1024)} KiB; the floor written back to back alone after them: p50 ${round(a.p50)} / p99 ${round(a.p99)} ms (arm p99 ${round(ratio(c.p99, a.p99), 1)} x that)` }
  ]
}
