// Detection figures: a run armed in a launch dir, then its Nextflow start (history line `-`) seen -> run `running`,
// and its terminal line (history OK, then Goodbye) -> its hpc run dir gone from disk. Native (the run's launch dir
// watched through inotify) against the inotify floor measured by this process; polling (a watch root with
// `poll: true`, 1 s) against the poll interval.
import { mkdirSync } from 'node:fs'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { callJson, type BenchDaemon } from './daemon.js'
import { PlayedRun, prepareLaunchDir } from './nextflow-files.js'
import { EventTracker, inotifyProbe, waitGone } from './observe.js'
import { ratio, type Figure } from './report.js'
import { userSecretNames } from './seed.js'
import { median, nowMs, summarize } from './stats.js'

export const POLL_INTERVAL_MS = 1000

export interface Sample { startMs: number, endMs: number, floorMs: number }

let sampleCounter = 0

/** Wait until the daemon lists `dir` among its watches (a run's own launch dir), then a little for chokidar's add. */
async function waitWatched (daemon: BenchDaemon, dir: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    const r = await callJson(daemon.socket, 'GET', '/api/v1/watches')
    if (r.status === 200 && Array.isArray(r.body) && r.body.some((w: { root?: string }) => w.root === dir)) return
    await sleep(20)
  }
  throw new Error(`the daemon did not start watching ${dir}`)
}

/**
 * The pauses between a run's steps, so that each write is read on its own (the watcher reads the first event of a burst
 * at once, then at most once per 50 ms window): after the arm, after the log head, between the start and the end.
 */
export interface Pacing { afterArmMs: number, gapMs: number, beforeEndMs: number }
export const DETECT_PACING: Pacing = { afterArmMs: 300, gapMs: 300, beforeEndMs: 200 }

/** One run through its life in `dir`. `covered`: the dir sits under a watch root, so no per-run watch appears. */
export async function playOne (daemon: BenchDaemon, tracker: EventTracker, dir: string, covered: boolean, pace: Pacing = DETECT_PACING): Promise<Sample> {
  const r = await callJson(daemon.socket, 'POST', '/api/v1/runs', { mode: 'arm', launchDir: dir, targets: ['hpc'], only: userSecretNames(20) })
  if (r.status !== 201) throw new Error(`POST /runs answered ${r.status}: ${JSON.stringify(r.body).slice(0, 300)}`)
  const { runId, sessionId } = r.body as { runId: string, sessionId: string }
  if (!covered) await waitWatched(daemon, dir)
  await sleep(pace.afterArmMs)
  const run = new PlayedRun(dir, sessionId, sampleCounter++)
  run.writeLogHead()
  await sleep(pace.gapMs)
  const probe = inotifyProbe(join(dir, '.nextflow'))
  run.start()
  const t0 = nowMs()
  probe.armed()
  const started = await tracker.waitFor(runId, 'run.started')
  const floorMs = await probe.delay()
  await sleep(pace.beforeEndMs)
  const runDir = join(daemon.runsRoot, userInfo().username, runId)
  run.finishHistory()
  const t1 = nowMs()
  run.goodbye()
  const gone = await waitGone(runDir)
  // The next sample in the same dir must not see this run still live.
  await tracker.waitFor(runId, 'run.revoked', 10_000).catch(() => {})
  return { startMs: started - t0, endMs: gone - t1, floorMs }
}

export interface DetectOptions { daemon: BenchDaemon, dir: string, pollRoot: string, pollDirs: string[], samples: number, pollSamples: number }

/** The dirs under the polled root must exist before the daemon starts, so its first walk finds them. */
export function preparePollDirs (pollRoot: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    const d = join(pollRoot, `p${i}`)
    prepareLaunchDir(d)
    return d
  })
}

export async function detectFigures (o: DetectOptions): Promise<Figure[]> {
  const tracker = await EventTracker.open(o.daemon.socket)
  try {
    const native: Sample[] = []
    for (let i = 0; i < o.samples; i++) {
      const d = join(o.dir, 'native', `n${i}`)
      mkdirSync(d, { recursive: true })
      prepareLaunchDir(d)
      native.push(await playOne(o.daemon, tracker, d, false))
    }
    const polled: Sample[] = []
    for (let i = 0; i < o.pollSamples; i++) polled.push(await playOne(o.daemon, tracker, o.pollDirs[i % o.pollDirs.length]!, true))
    const floor = median(native.map(s => s.floorMs).filter(Number.isFinite))
    const ns = summarize(native.map(s => s.startMs))
    const ne = summarize(native.map(s => s.endMs))
    const ps = summarize(polled.map(s => s.startMs))
    const pe = summarize(polled.map(s => s.endMs))
    const nativeFig = (label: string, p: 'p50' | 'p99', s: ReturnType<typeof summarize>): Figure => ({
      figure: `${label} native ${p} ms`, value: s[p], baselineLabel: 'inotify floor', baseline: floor, ratio: ratio(s[p], floor), target: p === 'p99' ? 'p99 < 100 ms' : '-', met: p === 'p99' ? s.p99 < 100 : null, ...(p === 'p99' ? { note: `${s.n} samples (nearest-rank p99 = slowest)` } : {})
    })
    const pollFig = (label: string, p: 'p50' | 'p99', s: ReturnType<typeof summarize>): Figure => ({
      figure: `${label} polling ${p} ms`, value: s[p], baselineLabel: 'poll interval', baseline: POLL_INTERVAL_MS, ratio: ratio(s[p], POLL_INTERVAL_MS), target: p === 'p99' ? `p99 < ${POLL_INTERVAL_MS + 200} ms` : '-', met: p === 'p99' ? s.p99 < POLL_INTERVAL_MS + 200 : null, ...(p === 'p99' ? { note: `${s.n} samples` } : {})
    })
    return [
      nativeFig('start -> running', 'p50', ns), nativeFig('start -> running', 'p99', ns),
      nativeFig('terminal -> run dir gone', 'p50', ne), nativeFig('terminal -> run dir gone', 'p99', ne),
      pollFig('start -> running', 'p50', ps), pollFig('start -> running', 'p99', ps),
      pollFig('terminal -> run dir gone', 'p50', pe), pollFig('terminal -> run dir gone', 'p99', pe)
    ]
  } finally {
    tracker.close()
  }
}
