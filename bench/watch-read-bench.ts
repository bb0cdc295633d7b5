// The watcher's hot path, a launch dir's read (review 5 of issue 16): each file event in a launch dir is one read of
// its history tail and log head and tail. Since c487cca each read first ran the guard (root-check.ts: an lstat of the
// root and of every ancestor) and then opened the files by path; now the read goes from the root's held fd one
// component at a time (watch/held-root.ts) and needs no guard. Both are run here, in this process, on the same
// launch dirs under a root 10 components deep, in alternating rounds, READ_FANOUT reads in flight as the watcher has.
import { mkdirSync, writeFileSync } from 'node:fs'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import { openRoot } from '../daemon/watch/held-root.js'
import { LaunchDir } from '../daemon/watch/launch-dir.js'
import { checkRootPath } from '../daemon/watch/root-check.js'
import { nodeWalkFs, walkTree, type WalkFs } from '../daemon/watch/walk.js'
import { prepareLaunchDir } from './nextflow-files.js'
import { ratio, type Figure } from './report.js'
import { median, nowMs, round } from './stats.js'

const READ_FANOUT = 32

/** Reads per second over `dirs`, READ_FANOUT at a time, each after `before` when given. */
async function pass (dirs: readonly LaunchDir[], before?: () => Promise<unknown>): Promise<number> {
  const t = nowMs()
  for (let i = 0; i < dirs.length; i += READ_FANOUT) {
    await Promise.all(dirs.slice(i, i + READ_FANOUT).map(async ld => {
      if (before !== undefined) await before()
      await ld.scan({ history: true, log: true })
    }))
  }
  return dirs.length / ((nowMs() - t) / 1000)
}

export async function readFigures (o: { dir: string, dirs: number, rounds: number }): Promise<Figure[]> {
  const root = join(o.dir, 'reads', 'a', 'b', 'c', 'd', 'e', 'f', 'root')
  const depth = root.split('/').length - 1
  const paths: string[] = []
  for (let i = 0; i < o.dirs; i++) {
    const d = join(root, `p${i % 10}`, `l${i}`)
    mkdirSync(d, { recursive: true })
    prepareLaunchDir(d)
    writeFileSync(join(d, '.nextflow.log'), 'Nextflow log head\n')
    paths.push(d)
  }
  const uid = userInfo().uid
  const held = await openRoot(root, uid)
  if (!('dev' in held)) throw new Error(`the bench root did not open: ${held.reason}`)
  try {
    const open = async (byFd: boolean): Promise<LaunchDir[]> => await Promise.all(paths.map(async d => {
      const ld = await LaunchDir.open(d, true, Number.POSITIVE_INFINITY, byFd ? async p => await held.openDir(p) : undefined)
      if (ld === null) throw new Error('a bench launch dir did not open')
      return ld
    }))
    const [byPath, byFd] = [await open(false), await open(true)]
    const guarded: number[] = []
    const fd: number[] = []
    for (let r = 0; r < o.rounds; r++) {
      guarded.push(await pass(byPath, async () => await checkRootPath(root, uid)))
      fd.push(await pass(byFd))
    }
    // The walk itself (a start, a takeover): by fd from the held root, each dir opened from its parent's fd, against by path.
    const walk = async (fs: WalkFs): Promise<number> => { const t = nowMs(); await walkTree(root, 0, 2, fs); return nowMs() - t }
    const walkFd: number[] = []
    const walkPath: number[] = []
    for (let r = 0; r < o.rounds; r++) {
      walkPath.push(await walk(nodeWalkFs))
      walkFd.push(await walk(held.fs()))
    }
    const after = median(fd)
    const before = median(guarded)
    return [{
      figure: `walk of a root of ${o.dirs} launch dirs ms (depth 2)`,
      value: round(median(walkFd)),
      baselineLabel: 'the same walk by path',
      baseline: round(median(walkPath)),
      ratio: ratio(median(walkFd), median(walkPath)),
      target: 'reported',
      met: null,
      note: `by fd from the held root, each dir from its parent's fd (held-root.ts), median of ${o.rounds} alternating rounds each`
    }, {
      figure: `launch-dir reads/s, root ${depth} components deep`,
      value: round(after, 0),
      baselineLabel: 'guard (lstat of root + ancestors) then a read by path, as before',
      baseline: round(before, 0),
      ratio: ratio(after, before),
      target: '>= 1 x (no guard cost)',
      met: after >= before,
      note: `${o.dirs} launch dirs, ${READ_FANOUT} reads in flight, median of ${o.rounds} alternating rounds each`
    }]
  } finally {
    await held.close()
  }
}
