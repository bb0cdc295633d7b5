// The adoption sweeps' discipline (cluster/adopt-sweeps.ts), on a fake ownership whose adoptOrphans the test resolves
// by hand: a sweep at start, one at a time, a burst of deletes during a sweep asks for exactly one more, a failed sweep
// stops nothing, close stops everything. The takeover itself is tested on a real etcd (takeover.test.ts, daemons.test.ts).
import t from 'tap'
import pino from 'pino'
import { startAdoptSweeps, type Adopting, type Every } from '../../daemon/cluster/adopt-sweeps.js'

interface Fake extends Adopting {
  calls: number
  pending: Array<{ resolve: (ids: string[]) => void, reject: (err: Error) => void }>
  orphan: (runId: string) => void
}

function fake (): Fake {
  const listeners = new Set<(runId: string) => void>()
  const f: Fake = {
    calls: 0,
    pending: [],
    adoptOrphans: async () => {
      f.calls++
      return await new Promise<string[]>((resolve, reject) => { f.pending.push({ resolve, reject }) })
    },
    onOrphaned: (listener) => { listeners.add(listener); return () => { listeners.delete(listener) } },
    orphan: (runId) => { for (const l of listeners) l(runId) }
  }
  return f
}

const tick = async (): Promise<void> => { for (let i = 0; i < 5; i++) await new Promise(resolve => setImmediate(resolve)) }

t.test('a sweep at start; a burst of deletes during it asks for one more, not one each', async t => {
  const f = fake()
  const adopted: string[][] = []
  const sweeps = startAdoptSweeps(f, ids => { adopted.push(ids) }, pino({ level: 'silent' }))
  t.teardown(() => { sweeps.close() })
  t.equal(f.calls, 1, 'the start sweep')
  for (let i = 0; i < 10; i++) f.orphan(`r${i}`)
  await tick()
  t.equal(f.calls, 1, 'still one at a time')
  f.pending.shift()!.resolve(['old1', 'old2'])
  await tick()
  t.same(adopted, [['old1', 'old2']])
  t.equal(f.calls, 2, 'exactly one more after the burst')
  f.pending.shift()!.resolve([])
  await tick()
  t.equal(f.calls, 2, 'and no more')
  t.same(adopted, [['old1', 'old2']], 'an empty sweep reports nothing')
  await sweeps.idle()
})

t.test('a failed sweep is logged and the next delete sweeps again; idle waits for the sweep in flight', async t => {
  const f = fake()
  const lines: string[] = []
  const log = pino({ level: 'warn' }, { write: (s: string) => { lines.push(s) } })
  const sweeps = startAdoptSweeps(f, () => {}, log)
  t.teardown(() => { sweeps.close() })
  let idle = false
  const waiting = sweeps.idle().then(() => { idle = true })
  await tick()
  t.equal(idle, false, 'idle waits for the start sweep')
  f.pending.shift()!.reject(new Error('etcd unavailable'))
  await waiting
  t.equal(idle, true)
  const logged = (): Array<Record<string, unknown>> => lines.map(l => JSON.parse(l) as Record<string, unknown>)
  t.match(logged(), [{ level: 40, err: { message: 'etcd unavailable' } }], 'the failure is logged with its error')
  f.orphan('r1')
  t.equal(f.calls, 2, 'the next delete sweeps again')
  f.pending.shift()!.resolve(['r1'])
  await sweeps.idle()
  t.match(logged().at(-1), { level: 40, runs: 1 }, 'what was adopted is logged with its count')
})

/** A timer the test fires by hand: what startAdoptSweeps was given, and whether it was stopped. */
function handTimer (): { every: Every, fire: () => void, stopped: () => boolean } {
  let fn: (() => void) | null = null
  let stopped = false
  return {
    every: (f) => { fn = f; return () => { stopped = true } },
    fire: () => { fn?.() },
    stopped: () => stopped
  }
}

t.test('close: no sweep after it, whatever is deleted or fires', async t => {
  const f = fake()
  const timer = handTimer()
  const sweeps = startAdoptSweeps(f, () => {}, pino({ level: 'silent' }), 10, timer.every)
  f.pending.shift()!.resolve([])
  await sweeps.idle()
  sweeps.close()
  t.equal(timer.stopped(), true, 'the timer is stopped')
  f.orphan('r1')
  timer.fire()
  await tick()
  t.equal(f.calls, 1, 'neither the delete nor a late tick of the timer swept')
})

t.test('the timer sweeps too', async t => {
  const f = fake()
  const timer = handTimer()
  const sweeps = startAdoptSweeps(f, () => {}, pino({ level: 'silent' }), 10, timer.every)
  t.teardown(() => { sweeps.close() })
  f.pending.shift()!.resolve([])
  await sweeps.idle()
  timer.fire()
  t.equal(f.calls, 2, 'a sweep came from the timer alone')
  f.pending.shift()!.resolve([])
  await sweeps.idle()
})

t.test('the default timer (setInterval) sweeps at its interval', async t => {
  const f = fake()
  const sweeps = startAdoptSweeps(f, () => {}, pino({ level: 'silent' }), 10)
  t.teardown(() => { sweeps.close() })
  f.pending.shift()!.resolve([])
  for (let i = 0; i < 200 && f.calls < 2; i++) await new Promise(resolve => setTimeout(resolve, 5))
  t.ok(f.calls >= 2, 'a sweep came from setInterval')
})

t.test('a listener that throws is logged; the sweeps go on and idle resolves', async t => {
  const f = fake()
  const lines: string[] = []
  const log = pino({ level: 'warn' }, { write: (s: string) => { lines.push(s) } })
  const sweeps = startAdoptSweeps(f, () => { throw new Error('listener broke') }, log)
  t.teardown(() => { sweeps.close() })
  f.pending.shift()!.resolve(['r1', 'r2'])
  await sweeps.idle()
  const logged = lines.map(l => JSON.parse(l) as Record<string, unknown>)
  t.match(logged.at(-1), { level: 50, runs: 2, err: { message: 'listener broke' } }, 'the failure is logged with its error')
  f.orphan('r3')
  t.equal(f.calls, 2, 'the next delete sweeps again')
  f.pending.shift()!.resolve([])
  await sweeps.idle()
})
