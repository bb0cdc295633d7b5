// The file store's pending lastUsed marks (last-used-marks.ts) on their own: the overlay, what a write takes along,
// and when the write of their own comes. The store's use of them: last-used.test.ts.
import t from 'tap'
import { LAST_USED_MAX_WINDOWS, PendingMarks, withUsed } from '../../daemon/store/last-used-marks.js'
import { emptyStore, entryKey, type StoreData } from '../../daemon/store/store-format.js'
import { ManualTimers } from '../helpers/manual-timers.js'

const logger = { warn: () => {} }

function data (): StoreData {
  const s = emptyStore('k')
  const rec = (name: string): StoreData['secrets'][number] => ({ name, scope: 'user:alice', createdAt: '', createdBy: 'alice', updatedAt: '', updatedBy: 'alice', lastUsed: null, version: 1, sealed: {} as StoreData['secrets'][number]['sealed'] })
  return { ...s, secrets: [rec('A'), rec('B')] }
}

t.test('withUsed lays the marks over the records they name, and is the same object without any', async t => {
  const d = data()
  t.equal(withUsed(d, new Map()), d, 'no marks: the same data')
  const marked = withUsed(d, new Map([[entryKey('user:alice', 'B'), 'T1']]))
  t.same(marked.secrets.map(s => s.lastUsed), [null, 'T1'], 'B marked')
  t.same(d.secrets.map(s => s.lastUsed), [null, null], 'the data given is not changed')
})

t.test('a write takes the marks it held; one made again meanwhile stays pending', async t => {
  const marks = new PendingMarks({ flushMs: 100, logger, timers: new ManualTimers() }, async () => {}, () => false)
  const a = entryKey('user:alice', 'A')
  const b = entryKey('user:alice', 'B')
  marks.set(a, 'T1')
  marks.set(b, 'T1')
  const held = marks.snapshot()
  marks.set(b, 'T2')
  marks.written(held)
  t.equal(marks.size, 1, 'B is still pending')
  t.same(marks.overlay(data()).secrets.map(s => s.lastUsed), [null, 'T2'], 'with its newer time')
})

t.test('the write of their own comes once marks go quiet, and at the latest after LAST_USED_MAX_WINDOWS windows', async t => {
  const timers = new ManualTimers()
  let writes = 0
  // As the store's write does: what it held is on disk after it.
  const marks: PendingMarks = new PendingMarks({ flushMs: 100, logger, timers }, async () => { writes++; marks.written(marks.snapshot()) }, () => false)
  for (let i = 0; i < LAST_USED_MAX_WINDOWS * 2; i++) {
    marks.schedule()
    await timers.advance(90)
  }
  t.equal(writes, 1, 'a mark every 90 ms of 100 still gets one write, at the cap')
  marks.stop()
  await timers.advance(1000)
  t.equal(writes, 1, 'none after stop')
})

t.test('a failed write is tried again one window later, unless the store is closed', async t => {
  const timers = new ManualTimers()
  let closed = false
  let tries = 0
  const marks = new PendingMarks({ flushMs: 100, logger, timers }, async () => { tries++; throw new Error('ENOSPC') }, () => closed)
  await marks.flush()
  await timers.advance(100)
  t.equal(tries, 2, 'tried again')
  closed = true
  await timers.advance(1000)
  t.equal(tries, 3, 'the retry already set runs once more, then no other is set')
})
