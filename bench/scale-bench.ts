// Scale figures: a watch root holding N launch dirs, each with a `work/` of 1,000 entries, at N = 1, 100, 1,000 and
// 10,000: start -> running p99, the daemon's RSS once settled, and its idle CPU, each against the 1-dir figure.
// 10,000 x 1,000 is ten million directory entries: far too many to create in a benchmark's time on a small machine
// (about 40 us a link here), so the tree is built once into a cache outside the repository (hard links to 1,000
// template files; only the dirs cost inodes) and reused by every later run. Dirs are moved into the watched root
// by rename, which costs nothing, and moved back at the end.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { userInfo } from 'node:os'
import { cpuPercent, rssMb, settle, startDaemon } from './daemon.js'
import { playOne } from './detect-bench.js'
import { prepareLaunchDir } from './nextflow-files.js'
import { EventTracker } from './observe.js'
import { ratio, type Figure } from './report.js'
import { seedState } from './seed.js'
import { nowMs, summarize } from './stats.js'

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

interface ScalePoint { n: number, readyMs: number, settleMs: number, rss: number, cpu: number, p99: number, samples: number }

async function measure (n: number, dir: string, samples: number, idleMs: number): Promise<ScalePoint> {
  const cache = cacheDir()
  const root = join(cache, 'root')
  mkdirSync(root, { recursive: true })
  const names = Array.from({ length: n }, (_, i) => `d${String(i).padStart(5, '0')}`)
  for (const name of names) renameSync(join(cache, 'pool', name), join(root, name))
  try {
    // Fresh history in the dirs the samples use; the rest keep their empty one.
    for (let i = 0; i < Math.min(n, samples); i++) {
      rmSync(join(root, names[i]!, '.nextflow.log'), { force: true })
      prepareLaunchDir(join(root, names[i]!))
    }
    const me = userInfo()
    const d = join(dir, `scale-${n}`)
    seedState({ stateDir: join(d, 'state'), runsRoot: join(d, 'runs'), user: me.username, uid: me.uid, gid: me.gid, userSecrets: 20, workspaceSecrets: 0, runs: 0 })
    const daemon = await startDaemon(d, { config: { watch: [{ root, depth: 1 }] } })
    try {
      // chokidar sets its watches up after /health answers: wait for the daemon to go quiet before measuring.
      const settleMs = await settle(daemon.pid)
      const rss = rssMb(daemon.pid)
      const cpu = await cpuPercent(daemon.pid, idleMs)
      const tracker = await EventTracker.open(daemon.socket)
      const lat: number[] = []
      try {
        for (let i = 0; i < samples; i++) lat.push((await playOne(daemon, tracker, join(root, names[i % n]!), true)).startMs)
      } finally {
        tracker.close()
      }
      return { n, readyMs: daemon.readyMs, settleMs, rss, cpu, p99: summarize(lat).p99, samples }
    } finally {
      await daemon.stop()
    }
  } finally {
    for (const name of names) renameSync(join(root, name), join(cache, 'pool', name))
  }
}

export async function scaleFigures (o: { dir: string, sizes: number[], samples: number, idleMs: number }): Promise<Figure[]> {
  const built = buildPool(Math.max(...o.sizes))
  const points: ScalePoint[] = []
  for (const n of o.sizes) points.push(await measure(n, o.dir, o.samples, o.idleMs))
  const base = points[0]!
  const top = points[points.length - 1]!
  const out: Figure[] = []
  for (const p of points) {
    const judged = p === top && p.n >= 10_000
    const note = `ready ${Math.round(p.readyMs)} ms, settled after ${Math.round(p.settleMs)} ms, ${p.samples} samples` +
      (p === base && built.made > 0 ? `; the launch-dir pool was built first (${built.made} dirs in ${Math.round(built.seconds)} s, cached in ${cacheDir()})` : '')
    out.push(
      { figure: `@${p.n} dirs: start -> running p99 ms`, value: p.p99, baselineLabel: '1 dir', baseline: base.p99, ratio: ratio(p.p99, base.p99), target: 'grows < 2x to 10,000', met: judged ? p.p99 < 2 * base.p99 : null, note },
      { figure: `@${p.n} dirs: daemon RSS MB`, value: p.rss, baselineLabel: '1 dir', baseline: base.rss, ratio: ratio(p.rss, base.rss), target: '< 250 MB at 10,000', met: judged ? p.rss < 250 : null },
      { figure: `@${p.n} dirs: idle CPU % of a core`, value: p.cpu, baselineLabel: '1 dir', baseline: base.cpu, ratio: ratio(p.cpu, base.cpu), target: '< 2% at 10,000', met: judged ? p.cpu < 2 : null }
    )
  }
  return out
}
