// Scale figures: a watch root holding N launch dirs, each with a `work/` of 1,000 entries, at N = 1, 1,000 and 10,000:
// start-up to ready, the daemon's RSS once walked and settled, its idle CPU, start -> running and terminal -> run dir
// gone over 100 runs, each against the 1-dir figure; at the largest N, the discovery of 1,000 more launch dirs.
// 10,000 x 1,000 is ten million directory entries: far too many to create in a benchmark's time on a small machine
// (about 40 us a link here), so the tree is built once into a cache outside the repository (hard links to 1,000
// template files; only the dirs cost inodes) and reused by every later run. Dirs are moved into the watched root
// by rename, which costs nothing, and moved back at the end.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs'
import { lstat, readdir } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { join } from 'node:path'
import { userInfo } from 'node:os'
import { callJson, cpuPercent, rssMb, settle, startDaemon, type BenchDaemon } from './daemon.js'
import { playOne, type Pacing } from './detect-bench.js'
import { prepareLaunchDir } from './nextflow-files.js'
import { EventTracker } from './observe.js'
import { ratio, type Figure } from './report.js'
import { seedState } from './seed.js'
import { median, nowMs, round, summarize, type Summary } from './stats.js'

export const WORK_ENTRIES = 1000

const BUILD = `
import os, sys
cache, n, entries = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tpl = os.path.join(cache, 'template')
os.makedirs(tpl, exist_ok=True)
names = ['%02x%030x' % (i % 256, i) for i in range(entries)]
for nm in names:
    p = os.path.join(tpl, nm)
    if not os.path.exists(p): open(p, 'w').close()
pool = os.path.join(cache, 'pool')
os.makedirs(pool, exist_ok=True)
made = 0
for i in range(n):
    d = os.path.join(pool, 'd%05d' % i)
    if os.path.exists(os.path.join(d, '.nextflow', 'history')): continue
    w = os.path.join(d, 'work')
    os.makedirs(w, exist_ok=True)
    os.makedirs(os.path.join(d, '.nextflow'), exist_ok=True)
    have = set(os.listdir(w))
    for nm in names:
        if nm not in have: os.link(os.path.join(tpl, nm), os.path.join(w, nm))
    open(os.path.join(d, '.nextflow', 'history'), 'w').close()
    made += 1
print(made)
`

export function cacheDir (): string {
  return process.env.NFS_BENCH_CACHE ?? join('/var/tmp', `nf-secretsd-bench-${userInfo().uid}`)
}

/** Make sure the pool holds `n` complete launch dirs; returns seconds spent building (0 when cached). */
export function buildPool (n: number): { seconds: number, made: number } {
  const cache = cacheDir()
  mkdirSync(cache, { recursive: true, mode: 0o700 })
  restore(cache)
  const t = nowMs()
  const r = spawnSync('python3', ['-c', BUILD, cache, String(n), String(WORK_ENTRIES)], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`building the launch-dir pool failed: ${r.stderr}`)
  return { seconds: (nowMs() - t) / 1000, made: Number(r.stdout.trim()) }
}

/** Dirs a crashed run left in the watched root go back to the pool. */
function restore (cache: string): void {
  const root = join(cache, 'root')
  if (!existsSync(root)) return
  for (const name of readdirSync(root)) renameSync(join(root, name), join(cache, 'pool', name))
}

interface ScalePoint { n: number, readyMs: number, readyAll: number[], settleMs: number, rss: number, cpu: number, start: Summary, end: Summary }
interface Discovery { n: number, ms: number, floorMs: number }

/** The pauses of a scale sample: long enough that each write is read on its own (a 50 ms window), no longer. */
const SCALE_PACING: Pacing = { afterArmMs: 0, gapMs: 80, beforeEndMs: 80 }
/** New launch dirs moved into the watched root at once for the discovery figure. */
export const DISCOVER_DIRS = 1000

const poolName = (i: number): string => `d${String(i).padStart(5, '0')}`

/** The root's launch dirs as the daemon counts them (GET /watches). */
async function launchDirCount (daemon: BenchDaemon, root: string): Promise<number> {
  const r = await callJson(daemon.socket, 'GET', '/api/v1/watches')
  return (r.body as Array<{ root: string, launchDirs: number }>).find(w => w.root === root)?.launchDirs ?? -1
}

/**
 * The floor of discovery: this process reading what the daemon must at least read of each new dir (the dir, and
 * whether `.nextflow/history` is a file), 32 at a time.
 */
async function walkFloor (dirs: string[]): Promise<number> {
  const t = nowMs()
  for (let i = 0; i < dirs.length; i += 32) {
    await Promise.all(dirs.slice(i, i + 32).map(async d => { await readdir(d); await lstat(join(d, '.nextflow', 'history')) }))
  }
  return nowMs() - t
}

/** 1,000 launch dirs moved into the watched root at once (rename: instant): time until the daemon counts them all. */
async function discover (daemon: BenchDaemon, root: string, n: number): Promise<Discovery> {
  const cache = cacheDir()
  const names = Array.from({ length: DISCOVER_DIRS }, (_, i) => poolName(n + i))
  const floorMs = await walkFloor(names.map(name => join(cache, 'pool', name)))
  const t = nowMs()
  for (const name of names) renameSync(join(cache, 'pool', name), join(root, name))
  let ms = Number.NaN
  while (nowMs() - t < 60_000) {
    if (await launchDirCount(daemon, root) >= n + DISCOVER_DIRS) { ms = nowMs() - t; break }
    await sleep(5)
  }
  // Moved back by measure()'s finally, with the others.
  return { n, ms, floorMs }
}

async function measure (n: number, dir: string, samples: number, starts: number, idleMs: number, discovery: boolean): Promise<{ point: ScalePoint, discovered: Discovery | null }> {
  const cache = cacheDir()
  const root = join(cache, 'root')
  mkdirSync(root, { recursive: true })
  const names = Array.from({ length: n }, (_, i) => poolName(i))
  for (const name of names) renameSync(join(cache, 'pool', name), join(root, name))
  try {
    // Fresh history in the dirs the samples use; the rest keep their empty one.
    for (let i = 0; i < Math.min(n, samples); i++) {
      rmSync(join(root, names[i]!, '.nextflow.log'), { force: true })
      prepareLaunchDir(join(root, names[i]!))
    }
    const me = userInfo()
    const fresh = (d: string): string => {
      seedState({ stateDir: join(d, 'state'), runsRoot: join(d, 'runs'), user: me.username, uid: me.uid, gid: me.gid, userSecrets: 20, workspaceSecrets: 0, runs: 0 })
      return d
    }
    // Start-up to ready is one start's wall time, tens of ms apart from size to size: one start a size gave 0.85 x
    // (loaded) and 1.24 x (quiet) at 10,000 dirs. So the figure is the median of `starts` (each on a fresh state dir,
    // stopped once ready, the walk it began with it), the last of them the daemon measured below.
    const readyAll: number[] = []
    for (let i = 1; i < starts; i++) {
      const early = await startDaemon(fresh(join(dir, `scale-${n}-start${i}`)), { config: { watch: [{ root, depth: 1 }] } })
      readyAll.push(early.readyMs)
      await early.stop()
    }
    const d = fresh(join(dir, `scale-${n}`))
    const daemon = await startDaemon(d, { config: { watch: [{ root, depth: 1 }] } })
    readyAll.push(daemon.readyMs)
    try {
      // /health answers before the root is walked: wait for the walk to be done and the daemon to go quiet.
      const t = nowMs()
      while (await launchDirCount(daemon, root) < n && nowMs() - t < 120_000) await sleep(20)
      const settleMs = nowMs() - t + await settle(daemon.pid)
      const rss = rssMb(daemon.pid)
      const cpu = await cpuPercent(daemon.pid, idleMs)
      const tracker = await EventTracker.open(daemon.socket)
      const started: number[] = []
      const ended: number[] = []
      try {
        // Alternate over the first dirs, so that one dir's history does not grow with every sample.
        const used = Math.min(n, 10)
        for (let i = 0; i < samples + 2; i++) {
          // Under 10 dirs (the 1-dir baseline) a dir would gather every sample's history line (102): its files start
          // fresh before each, as each dir's do at 10 and up (a tenth of the samples each). Measured 3 Dec 20:05: the
          // grown history made the baseline's start -> running p50 10-11 ms against 8.4-8.7 reset (bench/README).
          if (used < 10) {
            rmSync(join(root, names[i % used]!, '.nextflow.log'), { force: true })
            prepareLaunchDir(join(root, names[i % used]!))
          }
          const s = await playOne(daemon, tracker, join(root, names[i % used]!), true, SCALE_PACING)
          // The first two warm the JIT; not counted.
          if (i < 2) continue
          started.push(s.startMs)
          ended.push(s.endMs)
        }
      } finally {
        tracker.close()
      }
      const discovered = discovery ? await discover(daemon, root, n) : null
      return { point: { n, readyMs: median(readyAll), readyAll, settleMs, rss, cpu, start: summarize(started), end: summarize(ended) }, discovered }
    } finally {
      await daemon.stop()
    }
  } finally {
    for (const name of readdirSync(root)) renameSync(join(root, name), join(cache, 'pool', name))
  }
}

export async function scaleFigures (o: { dir: string, sizes: number[], samples: number, starts: number, idleMs: number }): Promise<Figure[]> {
  const top = Math.max(...o.sizes)
  const built = buildPool(top + DISCOVER_DIRS)
  const points: ScalePoint[] = []
  let discovered: Discovery | null = null
  for (const [i, n] of o.sizes.entries()) {
    // The first size is every figure's baseline and the last is judged: both get their starts and idle window. A size
    // between them is reported only, so one start and a 1 s window do (14 s of the full run's 5 minutes).
    const between = i > 0 && n !== top
    const m = await measure(n, o.dir, o.samples, between ? 1 : o.starts, between ? Math.min(o.idleMs, 1000) : o.idleMs, n === top)
    points.push(m.point)
    discovered = m.discovered ?? discovered
  }
  const base = points[0]!
  const out: Figure[] = []
  for (const p of points) {
    // Judged at 10,000 dirs only (the full run); a quick run's largest size is reported, not judged.
    const judged = p.n === top && p.n >= 10_000
    const note = `ready ${Math.round(p.readyAll[p.readyAll.length - 1]!)} ms, walked and settled ${Math.round(p.settleMs)} ms later, ${p.start.n} samples (p50 ${round(p.start.p50)} ms)` +
      (p === base && built.made > 0 ? `; the launch-dir pool was built first (${built.made} dirs in ${Math.round(built.seconds)} s, cached in ${cacheDir()})` : '')
    out.push(
      { figure: `@${p.n} dirs: start -> running p99 ms`, value: p.start.p99, baselineLabel: '1 dir', baseline: base.start.p99, ratio: ratio(p.start.p99, base.start.p99), target: '< 2 x 1 dir at 10,000', met: judged ? p.start.p99 < 2 * base.start.p99 : null, note },
      { figure: `@${p.n} dirs: terminal -> run dir gone p99 ms`, value: p.end.p99, baselineLabel: '1 dir', baseline: base.end.p99, ratio: ratio(p.end.p99, base.end.p99), target: '< 25 ms at 10,000', met: judged ? p.end.p99 < 25 : null, note: `p50 ${round(p.end.p50)} ms` },
      { figure: `@${p.n} dirs: start-up to ready ms`, value: p.readyMs, baselineLabel: '1 dir', baseline: base.readyMs, ratio: ratio(p.readyMs, base.readyMs), target: '< 1.15 x 1 dir (not walking first)', met: judged ? p.readyMs < 1.15 * base.readyMs : null, note: `median of ${p.readyAll.length} starts: ${p.readyAll.map(x => Math.round(x)).join(', ')} ms` },
      { figure: `@${p.n} dirs: daemon RSS MB`, value: p.rss, baselineLabel: '1 dir', baseline: base.rss, ratio: ratio(p.rss, base.rss), target: '< 150 MB at 10,000', met: judged ? p.rss < 150 : null },
      { figure: `@${p.n} dirs: idle CPU % of a core`, value: p.cpu, baselineLabel: '1 dir', baseline: base.cpu, ratio: ratio(p.cpu, base.cpu), target: '< 1% at 10,000', met: judged ? p.cpu < 1 : null }
    )
  }
  if (discovered !== null) {
    out.push({ figure: `discovery of ${DISCOVER_DIRS} new launch dirs @${discovered.n} ms`, value: discovered.ms, baselineLabel: 'this process reading them', baseline: discovered.floorMs, ratio: ratio(discovered.ms, discovered.floorMs), target: '< 1000 ms', met: Number.isFinite(discovered.ms) ? discovered.ms < 1000 : false, note: `${DISCOVER_DIRS} dirs renamed into a root already holding ${discovered.n}; clock from the first rename to GET /watches counting them all` })
  }
  return out
}
