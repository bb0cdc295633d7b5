// When the watcher reads a launch dir: counts of reads for bursts, torn reads and live runs (no timing asserted:
// the clocks here are short only so that the test is quick).
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { ReadScheduler, type ReadOutcome, type ReadWhat } from '../../daemon/watch/read-scheduler.js'

function scheduler (t: Test, outcome: (n: number) => ReadOutcome | null, debounceMs = 1, intervalMs = 5): { s: ReadScheduler, reads: ReadWhat[] } {
  const reads: ReadWhat[] = []
  const s = new ReadScheduler({
    debounceMs,
    intervalMs: () => intervalMs,
    read: async (_dir, what) => { reads.push(what); return outcome(reads.length) },
    onError: () => { t.fail('no read fails here') }
  })
  t.teardown(() => { s.stop() })
  return { s, reads }
}

async function until (what: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !what(); i++) await sleep(10)
}

t.test('a burst in one turn is one read, asking for all that was asked', async t => {
  const { s, reads } = scheduler(t, () => ({ retry: false, live: false }), 60_000)
  s.schedule('/d', { history: true, log: false })
  for (let i = 0; i < 9; i++) s.schedule('/d', { history: false, log: i === 5 })
  await until(() => reads.length > 0)
  await sleep(50)
  t.same(reads, [{ history: true, log: true }])
})

t.test('a torn read is read again, at most five times in a row', async t => {
  const { s, reads } = scheduler(t, () => ({ retry: true, live: false }))
  s.schedule('/d', { history: true, log: true })
  await until(() => reads.length >= 6)
  await sleep(100)
  t.equal(reads.length, 6, 'the first read and five retries')
  t.same(reads.slice(1).map(r => r.log), [false, false, false, false, false], 'retries read the history only')
})

t.test('a live run is read again without an event until it ends; a dir no longer watched is not', async t => {
  const { s, reads } = scheduler(t, n => n === 1 ? { retry: false, live: true } : n === 2 ? { retry: false, live: false } : null)
  s.schedule('/d', { history: true, log: false })
  await until(() => reads.length >= 2)
  await sleep(100)
  t.equal(reads.length, 2, 'one recheck while live, none after the end')
  const gone = scheduler(t, () => null)
  gone.s.schedule('/e', { history: true, log: true })
  await until(() => gone.reads.length >= 1)
  await sleep(50)
  t.equal(gone.reads.length, 1)
})

t.test('forget and stop drop what waits', async t => {
  const { s, reads } = scheduler(t, () => ({ retry: false, live: true }), 1, 30)
  s.schedule('/d', { history: true, log: false })
  await until(() => reads.length >= 1)
  s.forget('/d')
  s.schedule('/e', { history: true, log: false })
  s.stop()
  s.schedule('/f', { history: true, log: false })
  await sleep(150)
  t.equal(reads.length, 1, 'no recheck of a forgotten dir, nothing after stop')
})
