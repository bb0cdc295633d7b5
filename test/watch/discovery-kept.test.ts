// A launch dir found while watched is watched through the fds its walk opened (walk.ts KeptDir, discovery.ts): each
// new dir and its `.nextflow` are opened once for the walk and the watches together (three opens of the dir and two of
// its `.nextflow` before, issue 18), what discovery holds open at once stays bounded however many dirs arrive, and
// nothing stays open. Then the other end: dirs removed in bulk are forgotten, a launch dir by name, a tree dir with
// everything below it.
import t from 'tap'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { RunDirWatcher, type WatcherEvent } from '../../daemon/watch/watcher.js'
import type { WalkDir, WalkFs } from '../../daemon/watch/walk.js'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import { waitFor } from '../helpers/watch.js'
import type { Teardown } from '../helpers/runs.js'
import { tempDir } from '../helpers/daemon.js'

const logger = pino({ level: 'silent' })

function launchDir (dir: string): void {
  mkdirSync(join(dir, '.nextflow'), { recursive: true })
  mkdirSync(join(dir, 'work'))
  writeFileSync(join(dir, '.nextflow', 'history'), '2026-01-01 10:00:00\t1s\told_run\tOK\tabc\t0b0b0b0b-0000-4000-8000-000000000000\tnextflow run x\n')
}

/** A fd of this process that a child it spawns would inherit (no O_CLOEXEC in its flags)? */
function inheritable (fd: number): boolean {
  const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1]
  return flags === undefined || (parseInt(flags, 8) & 0o2000000) === 0
}

/** Dirs the walk holds (WalkFs.hold) open now, the most at once, and any a spawned child would inherit. */
function countHolds (): { wrap: (fs: WalkFs) => WalkFs, live: () => number, max: () => number, inherited: number[] } {
  let live = 0
  let max = 0
  const inherited: number[] = []
  const wrap = (fs: WalkFs): WalkFs => ({
    readdir: fs.readdir,
    lstat: fs.lstat,
    ...(fs.hold === undefined
      ? {}
      : {
          hold: async (path: string, parent?: WalkDir): Promise<WalkDir | null> => {
            const d = await fs.hold!(path, parent)
            if (d === null) return null
            live++
            max = Math.max(max, live)
            // discovery keeps some of these open while it sets watches: a child launched meanwhile must not get them
            if (d.fd !== undefined && inheritable(d.fd)) inherited.push(d.fd)
            // the same object (held-root.ts tells its own dirs by their class), its close counted
            const close = d.close.bind(d)
            let closed = false
            Object.assign(d, {
              close: async () => {
                if (!closed) { closed = true; live-- }
                await close()
              }
            })
            return d
          }
        })
  })
  return { wrap, live: () => live, max: () => max, inherited }
}

/** Every path fs.promises.open is asked to open (resolved through /proc/self/fd), in order. */
function recordOpens (t: Teardown): string[] {
  const require = createRequire(import.meta.url)
  const fsp = require('node:fs/promises') as Record<string, unknown>
  const orig = fsp.open as (...a: unknown[]) => Promise<unknown>
  const opens: string[] = []
  fsp.open = async function (this: unknown, ...args: unknown[]) {
    if (typeof args[0] === 'string') opens.push(args[0].replace(/^\/proc\/self\/fd\/(\d+)/, (all, fd: string) => { try { return readlinkSync(`/proc/self/fd/${fd}`) } catch { return all } }).replace(/\/\.$/, ''))
    return await orig.apply(this, args)
  }
  syncBuiltinESMExports()
  t.teardown(() => { fsp.open = orig; syncBuiltinESMExports() })
  return opens
}

t.test('300 launch dirs moved in at once: each and its .nextflow opened once until found, holds bounded, none left open', async t => {
  const root = tempDir(t)
  const side = tempDir(t)
  const holds = countHolds()
  const w = new RunDirWatcher({ logger, debounceMs: 20, wrapFs: holds.wrap })
  const events: WatcherEvent[] = []
  // how many opens had been asked for when each dir was found (its first read comes after)
  const foundAt = new Map<string, number>()
  let opens: string[] = []
  w.on(e => {
    events.push(e)
    if (e.type === 'launch-dir-found') foundAt.set(e.launchDir, opens.length)
  })
  t.teardown(() => w.stop())
  await w.addGroup('root', { poll: false, intervalMs: 200 }, { path: root, depth: 1 })
  const names = Array.from({ length: 300 }, (_, i) => `p${i}`)
  for (const n of names) launchDir(join(side, n))
  opens = recordOpens(t)
  for (const n of readdirSync(side)) renameSync(join(side, n), join(root, n))
  await waitFor('all 300 found', () => w.groups()[0]?.launchDirs === 300, 30_000)
  await w.idle()
  // Before: the walk, the watch and the owner's read each opened the dir, the walk and the watch its `.nextflow`.
  const before = (path: string, upTo: number): number => opens.slice(0, upTo).filter(p => p === path).length
  const over = names.map(n => join(root, n)).filter(d => before(d, foundAt.get(d) ?? 0) !== 1 || before(join(d, '.nextflow'), foundAt.get(d) ?? 0) !== 1)
  t.same(over, [], 'each new dir, and its .nextflow, opened exactly once until it was found')
  t.ok(holds.max() <= 128, `at most ${holds.max()} dirs held at once (the walks of a batch and what they keep)`)
  t.equal(holds.live(), 0, 'nothing the walks held is still open')
  t.same(holds.inherited, [], 'every dir held was close-on-exec')
  t.equal(new Set(events.filter(e => e.type === 'launch-dir-found').map(e => (e as { launchDir: string }).launchDir)).size, 300, 'each found')
  // Watched through the walk's fds: a start in one is seen.
  const nf = await startFakeNextflow({ launchDir: join(root, 'p150') })
  t.teardown(() => nf.close())
  await waitFor('the start', () => events.some(e => e.type === 'run-started' && e.record.runName === nf.runName))
  await nf.finish('OK')
})

t.test('dirs removed in bulk are forgotten: launch dirs at the depth by name, a tree dir with all below it', async t => {
  for (const depth of [1, 2]) {
    const root = tempDir(t)
    const w = new RunDirWatcher({ logger, debounceMs: 20 })
    t.teardown(() => w.stop())
    // depth 1: p0..p199 at the depth; depth 2: also a tree dir g holding 50 more
    for (let i = 0; i < 200; i++) launchDir(join(root, `p${i}`))
    if (depth === 2) for (let i = 0; i < 50; i++) launchDir(join(root, 'g', `q${i}`))
    await w.addGroup('root', { poll: false, intervalMs: 200 }, { path: root, depth })
    const all = depth === 1 ? 200 : 250
    await waitFor(`all ${all} found`, () => w.groups()[0]?.launchDirs === all, 30_000)
    for (let i = 0; i < 150; i++) rmSync(join(root, `p${i}`), { recursive: true })
    if (depth === 2) rmSync(join(root, 'g'), { recursive: true })
    await waitFor('the removed ones forgotten', () => w.groups()[0]?.launchDirs === 50, 30_000)
    // the root, and 50 launch dirs with their .nextflow
    t.equal(w.groups()[0]?.dirs, 1 + 2 * 50, `depth ${depth}: nothing of what went is still watched`)
  }
})
