// The watcher at scale: a start made while a root is still being walked is seen (the daemon serves during the walk),
// natively chokidar holds only dirs (no per-file watch), and a launch dir is read at the first event of a burst
// (leading edge) with one more read for the rest (trailing), still safe against a history caught half-rewritten.
import t from 'tap'
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { RunDirWatcher, type WatcherEvent } from '../../daemon/watch/watcher.js'
import type { WalkFs } from '../../daemon/watch/walk.js'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import { ManualTimers } from '../helpers/manual-timers.js'
import { caller, type Teardown } from '../helpers/runs.js'
import { waitFor, watchFixture } from '../helpers/watch.js'

const logger = pino({ level: 'silent' })
const OLD = '2026-01-01 10:00:00\t1s\told_run\tOK\tabc\t0b0b0b0b-0000-4000-8000-000000000000\tnextflow run x\n'

function tempDir (t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-walk-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** `n` launch dirs with one old, finished run each (and a work/ the watcher must leave alone). */
function launchDirs (root: string, n: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    const d = join(root, `p${i}`)
    mkdirSync(join(d, '.nextflow'), { recursive: true })
    mkdirSync(join(d, 'work', 'ab'), { recursive: true })
    writeFileSync(join(d, '.nextflow', 'history'), OLD)
    return d
  })
}

/** A history line as Nextflow writes it at a start (`-`), with a fresh runName and session. */
function startLine (runName: string, i: number): string {
  const session = `1c1c1c1c-0000-4000-8000-${String(i).padStart(12, '0')}`
  const now = new Date()
  const ts = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}-${String(now.getDate()).padStart(2, '0')} ${now.toTimeString().slice(0, 8)}`
  return `${ts}\t-\t${runName}\t-\tabc\t${session}\tnextflow run x\n`
}

/** A watcher whose reads run on `timers`: moved by hand, nothing is read until the test says (ManualTimers). */
function watcher (t: Teardown, debounceMs: number, timers?: ManualTimers, wrapFs?: (fs: WalkFs) => WalkFs): { w: RunDirWatcher, events: WatcherEvent[] } {
  const w = new RunDirWatcher({ logger, debounceMs, ...(timers !== undefined ? { timers } : {}), ...(wrapFs !== undefined ? { wrapFs } : {}) })
  const events: WatcherEvent[] = []
  w.on(e => events.push(e))
  t.teardown(() => w.stop())
  return { w, events }
}

const starts = (events: WatcherEvent[], name: string): number => events.filter(e => e.type === 'run-started' && e.record.runName === name).length
const reads = (events: WatcherEvent[]): number => events.filter(e => e.type === 'activity').length

t.test('starts written while the root is being walked are seen; the lines already there are not starts', async t => {
  const root = tempDir(t)
  const dirs = launchDirs(root, 600)
  // Two starts written when the walk has read half the root: one in a dir it may have passed, one in the last made.
  let listed = 0
  const fs = (inner: WalkFs): WalkFs => ({
    ...inner,
    readdir: async (dir) => {
      if (++listed === 300) {
        appendFileSync(join(dirs[300]!, '.nextflow', 'history'), startLine('middle_run', 2))
        appendFileSync(join(dirs[599]!, '.nextflow', 'history'), startLine('late_run', 3))
      }
      return await inner.readdir(dir)
    }
  })
  const timers = new ManualTimers()
  const { w, events } = watcher(t, 30, timers, fs)
  const walk = w.addGroup('root', { poll: false, intervalMs: 200 }, { path: root, depth: 1 })
  // and one before the walk can have reached the dir
  appendFileSync(join(dirs[0]!, '.nextflow', 'history'), startLine('early_run', 1))
  const found = await walk
  t.ok(listed > 300, 'the starts were written while the walk was under way')
  t.equal(found.launchDirs, 600)
  for (const name of ['early_run', 'middle_run', 'late_run']) {
    await waitFor(name, async () => { await timers.advance(30); return starts(events, name) > 0 })
  }
  // Every read due by then (debounce, rechecks of the live dirs) fired and done: none raised a start again.
  await timers.advance(1000)
  await w.idle()
  for (const name of ['early_run', 'middle_run', 'late_run']) t.equal(starts(events, name), 1, `${name}: seen once`)
  t.equal(starts(events, 'old_run'), 0, 'a line older than the walk is a seed, not a start')
})

t.test('natively chokidar watches dirs only: the launch dir and .nextflow, no file, nothing under work/', async t => {
  const root = tempDir(t)
  const [dir] = launchDirs(root, 1)
  writeFileSync(join(dir!, '.nextflow.log'), 'log\n')
  const { w, events } = watcher(t, 30)
  await w.addGroup('root', { poll: false, intervalMs: 200 }, { path: root, depth: 1 })
  const watched = w.watched('root')
  t.same(Object.keys(watched).filter(k => k.startsWith(dir!)).sort(), [dir, join(dir!, '.nextflow')], 'two dirs a launch dir')
  t.same(watched[join(dir!, '.nextflow')], [], 'no history file watch')
  t.notOk(watched[dir!]?.includes('.nextflow.log'), 'no log file watch')
  t.notOk(watched[dir!]?.includes('work'), 'work/ is not even a child')
  // Files are still seen, through their dirs' events.
  appendFileSync(join(dir!, '.nextflow', 'history'), startLine('seen_run', 4))
  await waitFor('the start through the dir watch', () => starts(events, 'seen_run') === 1)
  const before = events.filter(e => e.type === 'activity').length
  appendFileSync(join(dir!, '.nextflow.log'), 'more\n')
  await waitFor('a log change reads the dir', () => events.filter(e => e.type === 'activity').length > before)
})

t.test('leading edge: the first event is read at once, a burst costs two reads, a torn rewrite one end', async t => {
  const root = tempDir(t)
  const [dir] = launchDirs(root, 1)
  const history = join(dir!, '.nextflow', 'history')
  // The clock never moves here: only a read at the first event (a timer of 0 ms) can see this start.
  const still = new ManualTimers()
  const slow = watcher(t, 60_000, still)
  await slow.w.addGroup('root', { poll: false, intervalMs: 200 }, { path: root, depth: 1 })
  appendFileSync(history, startLine('first_run', 5))
  await waitFor('the start, read at the first event', async () => { await still.advance(0); return starts(slow.events, 'first_run') === 1 })
  await slow.w.stop()

  const timers = new ManualTimers()
  const { w, events } = watcher(t, 400, timers)
  await w.addGroup('root2', { poll: false, intervalMs: 60_000 }, { path: root, depth: 1 })
  // past the window of any read at the watch's start
  await timers.advance(400)
  await w.idle()
  const r0 = reads(events)
  const names = Array.from({ length: 20 }, (_, i) => `burst_${i}`)
  for (const [i, name] of names.entries()) appendFileSync(history, startLine(name, 100 + i))
  // The clock stands still: every event after the first waits for the window's end, however late it comes.
  await waitFor('the read at the first event', async () => { await timers.advance(0); return reads(events) === r0 + 1 })
  await w.idle()
  t.equal(reads(events) - r0, 1, 'one read while the window lasts')
  t.ok(names.every(n => starts(events, n) === 1), 'that read saw the whole burst')
  await timers.advance(400)
  await w.idle()
  t.ok(reads(events) - r0 <= 2, `at the window's end at most one more read (trailing edge): ${reads(events) - r0} in all`)

  // Nextflow ends a run by truncating the history and writing it whole again: a read between the two sees it empty.
  const text = readFileSync(history, 'utf8')
  truncateSync(history, 0)
  const before = reads(events)
  await waitFor('a read of the emptied history', async () => { await timers.advance(400); return reads(events) > before })
  await w.idle()
  t.notOk(events.some(e => e.type === 'run-ended'), 'an empty history ends nothing')
  writeFileSync(history, text.replace(/\t-\tburst_0\t-\t/, '\t3s\tburst_0\tOK\t'))
  await waitFor('the end', async () => { await timers.advance(400); return events.some(e => e.type === 'run-ended' && e.runName === 'burst_0') })
  // Every read still due (retries, the live dir's recheck) fired and done: none raises the end or a start again.
  await timers.advance(60_000)
  await w.idle()
  t.equal(events.filter(e => e.type === 'run-ended' && e.runName === 'burst_0').length, 1, 'one end')
  t.ok(names.every(n => starts(events, n) === 1), 'no start raised again by the torn read')
})

t.test('a daemon walking a big root serves at once; an armed run there is not watched twice and its start is seen', async t => {
  const dir = tempDir(t)
  const dirs = launchDirs(join(dir, 'root'), 1500)
  const f = await watchFixture(t, { dir, watch: [{ depth: 1 }] })
  const walking = f.service.summary().walking ?? []
  const last = dirs[dirs.length - 1]!
  const run = await f.runs.create(caller(), { mode: 'arm', launchDir: last, targets: ['memory'] })
  const nf = await startFakeNextflow({ launchDir: last, sessionId: run.sessionId })
  t.teardown(() => nf.close())
  t.same(walking, [join(dir, 'root')], 'open() is back while the root is still being walked')
  t.notOk(f.service.list(caller('root', { isAdmin: true })).some(v => v.source === 'run' && v.root === last), 'the walk watches it, not a watch of its own')
  await waitFor('running', () => f.ledger.get(run.runId)?.state === 'running', 20_000)
  await waitFor('walk done', () => (f.service.summary().walking ?? []).length === 0, 20_000)
  t.equal(f.service.summary().launchDirs, 1500)
  t.equal(f.service.list(caller('root', { isAdmin: true })).find(v => v.source === 'config')?.walking, false)
  await nf.finish('OK')
  await waitFor('completed', () => f.ledger.get(run.runId)?.state === 'completed')
})
