// Discovery and the watcher's events: the bounded walk (table), launch dirs made later, log rotation, 1,000 launch
// dirs under one root, and the promise that matters on a cluster: work/ is never listed, stat'ed inside or watched.
import t from 'tap'
import { createRequire, syncBuiltinESMExports } from 'node:module'
import { closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { pino } from 'pino'
import { RunDirWatcher, type WatcherEvent } from '../../daemon/watch/watcher.js'
import { nodeWalkFs, walkTree, type WalkDir, type WalkFs } from '../../daemon/watch/walk.js'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import { waitFor } from '../helpers/watch.js'
import type { Teardown } from '../helpers/runs.js'

const logger = pino({ level: 'silent' })

function tempDir (t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-disc-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A launch dir as a finished Nextflow run leaves it (one OK line). */
function launchDir (dir: string): void {
  mkdirSync(join(dir, '.nextflow'), { recursive: true })
  writeFileSync(join(dir, '.nextflow', 'history'), '2026-01-01 10:00:00\t1s\told_run\tOK\tabc\t0b0b0b0b-0000-4000-8000-000000000000\tnextflow run x\n')
}

function watcher (t: Teardown, wrapFs?: (fs: WalkFs) => WalkFs): { w: RunDirWatcher, events: WatcherEvent[] } {
  const w = new RunDirWatcher({ logger, debounceMs: 20, ...(wrapFs !== undefined ? { wrapFs } : {}) })
  const events: WatcherEvent[] = []
  w.on(e => events.push(e))
  t.teardown(() => w.stop())
  return { w, events }
}

t.test('the walk: launch dirs to depth, never into work/, dot-dirs or symlinks', async t => {
  const root = tempDir(t)
  launchDir(join(root, 'a'))
  launchDir(join(root, 'b', 'c'))
  launchDir(join(root, 'b', 'c', 'd', 'e'))
  launchDir(join(root, 'a', 'work', 'x'))
  launchDir(join(root, '.hidden', 'y'))
  mkdirSync(join(root, 'fresh', '.nextflow'), { recursive: true })
  symlinkSync(join(root, 'b'), join(root, 'link'))
  const cases: Array<[number, string[]]> = [
    [0, []],
    [1, ['a']],
    [2, ['a', 'b/c']],
    [4, ['a', 'b/c', 'b/c/d/e']]
  ]
  for (const [depth, want] of cases) {
    const got = await walkTree(root, 0, depth)
    t.same(got.launchDirs.map(d => relative(root, d)).sort(), want, `depth ${depth}`)
    t.notOk(got.dirs.some(d => d.path.includes('/work') || d.path.includes('/.hidden') || d.path.includes('/link')), `depth ${depth}: nothing skipped was entered`)
  }
  t.ok((await walkTree(root, 0, 1)).cacheDirs.includes(join(root, 'fresh')), 'a .nextflow without history yet is a candidate')
  t.equal((await walkTree(root, 0, 8, nodeWalkFs, { limit: 3 })).truncated, true, 'the walk is bounded')
})

t.test('a launch dir made later is found and its start seen; log rotation; OK and Goodbye', async t => {
  const root = tempDir(t)
  const { w, events } = watcher(t)
  await w.addGroup('root', { poll: false, intervalMs: 200 }, { path: root, depth: 2 })
  const dir = join(root, 'group', 'proj')
  mkdirSync(dir, { recursive: true })
  // The new dir is watched before Nextflow writes in it (not a fixed pause): its start is then seen by event.
  await waitFor('the new dir to be watched', () => w.watched('root')[dir] !== undefined)
  const first = await startFakeNextflow({ launchDir: dir })
  t.teardown(() => first.close())
  await waitFor('launch-dir-found', () => events.some(e => e.type === 'launch-dir-found' && e.launchDir === dir))
  await waitFor('run-started', () => events.some(e => e.type === 'run-started' && e.record.runName === first.runName))
  await first.finish('OK')
  await waitFor('run-ended OK', () => events.some(e => e.type === 'run-ended' && e.runName === first.runName && e.status === 'OK' && e.via === 'history'))
  // A second run rolls the log to .nextflow.log.1; its end comes through the same files.
  const second = await startFakeNextflow({ launchDir: dir })
  t.teardown(() => second.close())
  await waitFor('second start', () => events.some(e => e.type === 'run-started' && e.record.runName === second.runName))
  await second.finish('ERR')
  await waitFor('run-ended ERR', () => events.some(e => e.type === 'run-ended' && e.runName === second.runName && e.status === 'ERR'))
  t.equal(events.filter(e => e.type === 'run-started' && e.record.runName === first.runName).length, 1, 'each start once')
  t.equal(events.filter(e => e.type === 'run-ended' && e.runName === first.runName).length, 1, 'each end once')
})

t.test('1,000 launch dirs under one root are discovered, and a start in any of them is seen', async t => {
  const root = tempDir(t)
  const dirs: string[] = []
  for (let i = 0; i < 1000; i++) {
    const d = join(root, `u${i % 10}`, `p${i}`)
    launchDir(d)
    dirs.push(d)
  }
  const { w, events } = watcher(t)
  const t0 = process.hrtime.bigint()
  const found = await w.addGroup('root', { poll: false, intervalMs: 200 }, { path: root, depth: 3 })
  const ms = Number(process.hrtime.bigint() - t0) / 1e6
  t.equal(found.launchDirs, 1000)
  t.equal(w.groups()[0]?.launchDirs, 1000)
  t.comment(`discovered 1000 launch dirs in ${ms.toFixed(0)} ms`)
  for (const i of [0, 537, 999]) {
    const nf = await startFakeNextflow({ launchDir: dirs[i]! })
    t.teardown(() => nf.close())
    const s0 = Date.now()
    await waitFor(`a start in p${i}`, () => events.some(e => e.type === 'run-started' && e.launchDir === dirs[i] && e.record.runName === nf.runName))
    t.comment(`start in p${i} seen after ${Date.now() - s0} ms`)
    await nf.finish('OK')
  }
})

t.test('a burst: 1,000 launch dirs moved into a watched root at once are each found once, and a start in one is seen', async t => {
  const root = tempDir(t)
  const side = tempDir(t)
  const { w, events } = watcher(t)
  await w.addGroup('root', { poll: false, intervalMs: 200 }, { path: root, depth: 2 })
  const moved: string[] = []
  for (let i = 0; i < 1000; i++) {
    // Every tenth one one level deeper, inside a plain dir: the walk of a new tree, not only a new launch dir.
    const d = i % 10 === 0 ? join(side, `g${i}`, 'p') : join(side, `p${i}`)
    launchDir(d)
    moved.push(d)
  }
  for (const name of readdirSync(side)) renameSync(join(side, name), join(root, name))
  const inRoot = moved.map(d => join(root, relative(side, d)))
  await waitFor('all 1,000 found', () => w.groups()[0]?.launchDirs === 1000, 30_000)
  const found = events.filter(e => e.type === 'launch-dir-found').map(e => (e as { launchDir: string }).launchDir)
  t.same([...found].sort(), [...inRoot].sort(), 'each launch dir found, once')
  const nf = await startFakeNextflow({ launchDir: inRoot[500]! })
  t.teardown(() => nf.close())
  await waitFor('the start', () => events.some(e => e.type === 'run-started' && e.record.runName === nf.runName))
  await nf.finish('OK')
})

t.test('a burst of new dirs under a dir budget watches no more than the budget', async t => {
  const root = tempDir(t)
  const side = tempDir(t)
  const { w } = watcher(t)
  const budget = { key: 'uid:test', limit: 50, owner: process.getuid!() }
  await w.addGroup('root', { poll: false, intervalMs: 200, budget }, { path: root, depth: 1 })
  for (let i = 0; i < 100; i++) launchDir(join(side, `p${i}`))
  for (const name of readdirSync(side)) renameSync(join(side, name), join(root, name))
  await waitFor('the budget reached', () => w.groups()[0]?.limited !== null, 30_000)
  await sleep(300)
  const g = w.groups()[0]!
  // A walk checks the budget before a dir, which may bring its `.nextflow` along: one over at most, as before bursts.
  t.ok(g.dirs <= budget.limit + 1, `${g.dirs} dirs watched (tree dirs and .nextflow together)`)
  t.ok(g.launchDirs > 0 && g.launchDirs < 100, `${g.launchDirs} of 100 launch dirs`)
})

interface Touches { paths: string[] }

/** Record every path handed to the fs calls the walker, chokidar and readdirp use; live ESM bindings follow. */
function recordFs (t: Teardown): Touches {
  const require = createRequire(import.meta.url)
  const fs = require('node:fs') as Record<string, unknown>
  const fsp = require('node:fs/promises') as Record<string, unknown>
  const touches: Touches = { paths: [] }
  const wrap = (obj: Record<string, unknown>, names: string[]): void => {
    for (const name of names) {
      const orig = obj[name] as (...a: unknown[]) => unknown
      obj[name] = function (this: unknown, ...args: unknown[]) {
        // A path through a dir held open (the watcher's, held-root.ts) is recorded as the dir it names, read now.
        if (typeof args[0] === 'string') touches.paths.push(args[0].replace(/^\/proc\/self\/fd\/(\d+)/, (all, fd: string) => { try { return readlinkSync(`/proc/self/fd/${fd}`) } catch { return all } }).replace(/\/\.$/, ''))
        return orig.apply(this, args)
      }
      t.teardown(() => { obj[name] = orig; syncBuiltinESMExports() })
    }
  }
  wrap(fs, ['readdir', 'readdirSync', 'opendir', 'opendirSync', 'watch', 'watchFile', 'stat', 'lstat', 'statSync', 'lstatSync', 'open', 'openSync'])
  wrap(fsp, ['readdir', 'opendir', 'stat', 'lstat', 'open', 'realpath'])
  syncBuiltinESMExports()
  return touches
}

t.test('work/ with 100,000 entries: not one is listed, stat\'ed or watched, in native and in polling mode', async t => {
  const root = tempDir(t)
  const proj = join(root, 'lab', 'proj')
  launchDir(proj)
  const work = join(proj, 'work')
  for (let a = 0; a < 250; a++) {
    const sub = join(work, a.toString(16).padStart(2, '0'))
    mkdirSync(sub, { recursive: true })
    for (let b = 0; b < 399; b++) closeSync(openSync(join(sub, `f${b}`), 'w'))
  }
  t.comment('work/ holds 250 dirs of 399 files: 100,000 entries')
  const touches = recordFs(t)
  const walkReads: string[] = []
  // the held root's own fs, every dir it lists, stats or opens for the walk (held from its parent's fd) recorded
  const countingFs = (inner: WalkFs): WalkFs => ({
    readdir: async (d, at) => { walkReads.push(d); return await inner.readdir(d, at) },
    lstat: async (p, at) => { walkReads.push(p); return await inner.lstat(p, at) },
    ...(inner.hold !== undefined ? { hold: async (p: string, parent?: WalkDir) => { walkReads.push(p); return await inner.hold!(p, parent) } } : {})
  })
  for (const poll of [false, true]) {
    const { w, events } = watcher(t, countingFs)
    await w.addGroup('root', { poll, intervalMs: 200 }, { path: root, depth: 4 })
    // Activity everywhere: a run, new task dirs in work/, and the launch dir itself changing.
    const nf = await startFakeNextflow({ launchDir: proj })
    t.teardown(() => nf.close())
    mkdirSync(join(work, 'ff', 'newtask'), { recursive: true })
    writeFileSync(join(work, '00', 'f0'), 'changed')
    await waitFor('the start', () => events.some(e => e.type === 'run-started' && e.record.runName === nf.runName))
    await nf.finish('OK')
    await waitFor('the end', () => events.some(e => e.type === 'run-ended' && e.runName === nf.runName))
    const watched = w.watched('root')
    t.ok(Object.keys(watched).includes(proj), `${poll ? 'poll' : 'native'}: the launch dir itself is watched`)
    t.notOk(Object.keys(watched).some(k => k === work || k.startsWith(`${work}/`)), 'chokidar holds no dir under work/')
    t.notOk(Object.values(watched).some(names => names.includes('work')), 'and does not even list work/ as a child')
    await w.stop()
  }
  t.ok(touches.paths.some(p => p === proj), 'the fs recorder saw the reads of the launch dir (the measure works)')
  t.ok(walkReads.includes(proj), 'the walker read the launch dir')
  const under = (p: string): boolean => p === work || p.startsWith(`${work}/`)
  t.same(touches.paths.filter(p => p.startsWith(`${work}/`)), [], 'no fs call named a path under work/')
  t.same(walkReads.filter(under), [], 'the walker never read or stat\'ed work/')
})
