// An idle daemon sleeps (issue 18: idle CPU < 1%): its event loop wakes a few times a second at most. Counted from
// outside, as the kernel counts them: the voluntary context switches of the daemon's main thread (each time its loop
// blocks in epoll), not wall time. prom-client's default event-loop lag sampler alone woke it 100 times a second.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { startTestDaemon } from '../helpers/daemon.js'

/** the voluntary context switches of `pid`'s main thread so far */
function wakeups (pid: number): number {
  const status = readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8')
  return Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status)?.[1])
}

t.test('an idle daemon wakes its event loop fewer than 25 times a second', async t => {
  const d = await startTestDaemon(t, { mode: 'user' })
  const pid = d.process.pid!
  // Past the start's own work (the first monitor pass, the first scrape of nothing).
  await sleep(1500)
  // The window as it really was: a loaded machine oversleeps, and a nominal 3 s would then overstate the rate.
  const before = wakeups(pid)
  const from = performance.now()
  await sleep(3000)
  const perSecond = (wakeups(pid) - before) / ((performance.now() - from) / 1000)
  t.ok(Number.isFinite(perSecond), 'counted')
  t.ok(perSecond < 25, `${perSecond.toFixed(1)} wakeups a second`)
})
