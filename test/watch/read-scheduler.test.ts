// When the watcher reads a launch dir: counts of reads for bursts, torn reads and live runs. Time is moved by hand
// (ManualTimers): each test runs the clock past every deadline that could cause one more read, so "no more reads" is
// proved without sleeping.
import t, { type Test } from 'tap'
import { ReadScheduler, type ReadOutcome, type ReadWhat } from '../../daemon/watch/read-scheduler.js'
import { ManualTimers, settle } from '../helpers/manual-timers.js'

function scheduler (t: Test, outcome: (n: number) => ReadOutcome | null, debounceMs = 1, intervalMs = 5): { s: ReadScheduler, reads: ReadWhat[], timers: ManualTimers } {
  const reads: ReadWhat[] = []
  const timers = new ManualTimers()
  const s = new ReadScheduler({
    debounceMs,
    intervalMs: () => intervalMs,
    read: async (_dir, what) => { reads.push(what); return outcome(reads.length) },
    onError: () => { t.fail('no read fails here') },
    timers
  })
  t.teardown(() => { s.stop() })
  return { s, reads, timers }
}

t.test('a burst in one turn is one read, asking for all that was asked', async t => {
  const { s, reads, timers } = scheduler(t, () => ({ retry: false, live: false }), 60_000)
  s.schedule('/d', { history: true, log: false })
  for (let i = 0; i < 9; i++) s.schedule('/d', { history: false, log: i === 5 })
  await timers.advance(0)
  t.same(reads, [{ history: true, log: true }], 'read at once (leading edge), once')
  await timers.advance(120_000)
  t.same(reads, [{ history: true, log: true }], 'nothing more, two debounce windows later')
  t.equal(timers.pending, 0)
})

t.test('a torn read is read again, at most five times in a row', async t => {
  const { s, reads, timers } = scheduler(t, () => ({ retry: true, live: false }))
  s.schedule('/d', { history: true, log: true })
  await timers.advance(60_000)
  t.equal(reads.length, 6, 'the first read and five retries')
  t.equal(timers.pending, 0, 'and nothing more set to come')
  t.same(reads.slice(1).map(r => r.log), [false, false, false, false, false], 'retries read the history only')
})

t.test('a live run is read again without an event until it ends; a dir no longer watched is not', async t => {
  const { s, reads, timers } = scheduler(t, n => n === 1 ? { retry: false, live: true } : n === 2 ? { retry: false, live: false } : null)
  s.schedule('/d', { history: true, log: false })
  await timers.advance(0)
  t.equal(reads.length, 1)
  await timers.advance(4)
  t.equal(reads.length, 1, 'no recheck before the interval')
  await timers.advance(1)
  t.equal(reads.length, 2, 'the recheck, at the interval, with no event')
  await timers.advance(60_000)
  t.equal(reads.length, 2, 'one recheck while live, none after the end')
  const gone = scheduler(t, () => null)
  gone.s.schedule('/e', { history: true, log: true })
  await gone.timers.advance(60_000)
  t.equal(gone.reads.length, 1)
})

t.test('forget and stop drop what waits', async t => {
  const { s, reads, timers } = scheduler(t, () => ({ retry: false, live: true }), 1, 30)
  s.schedule('/d', { history: true, log: false })
  await timers.advance(0)
  t.equal(reads.length, 1)
  s.forget('/d')
  s.schedule('/e', { history: true, log: false })
  s.stop()
  s.schedule('/f', { history: true, log: false })
  await timers.advance(60_000)
  t.equal(reads.length, 1, 'no recheck of a forgotten dir, nothing after stop')
  t.equal(timers.pending, 0)
})

t.test('reads of many dirs at once are bounded in flight, and every one still comes, once', async t => {
  // 1,000 runs moved into a root: each new dir asks for a read together. Each read holds fds; at most 32 at a time.
  const timers = new ManualTimers()
  let active = 0
  let most = 0
  const done: string[] = []
  const gates: Array<() => void> = []
  const s = new ReadScheduler({
    debounceMs: 50,
    intervalMs: () => 1000,
    read: async (dir) => {
      most = Math.max(most, ++active)
      await new Promise<void>(resolve => { gates.push(resolve) })
      active--
      done.push(dir)
      return { retry: false, live: false }
    },
    onError: () => { t.fail('no read fails here') },
    timers
  })
  t.teardown(() => { s.stop() })
  for (let i = 0; i < 100; i++) s.schedule(`/r/d${i}`, { history: true, log: true })
  await timers.advance(0)
  await settle()
  t.equal(most, 32, 'the first 32 start, the rest wait')
  while (done.length < 100) {
    const open = gates.splice(0)
    t.ok(open.length > 0, 'a waiting read starts once one ends')
    for (const g of open) g()
    await settle()
  }
  await s.idle()
  t.equal(most, 32, 'never more than 32 in flight')
  t.equal(new Set(done).size, 100, 'every dir read, once')
})
