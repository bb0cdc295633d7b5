// The hostDeadAfterSeconds rule (runs/host-dead.ts) as a table, and the watch that feeds it (cluster/host-watch.ts)
// as a sequence of membership views on an injected clock.
import t from 'tap'
import { HostWatch } from '../../daemon/cluster/host-watch.js'
import { sameHost } from '../../daemon/rules/host-name.js'
import { HOST_DEAD_REASON, hostDeadEnd } from '../../daemon/runs/host-dead.js'
import type { RunRecord } from '../../daemon/types.js'

type R = Pick<RunRecord, 'state' | 'host' | 'slurmJobId'>

t.test('the rule: only a live run with a local head on another, dead host is ended', async t => {
  const dead = (h: string): boolean => sameHost(h, 'login9') // hostAlive: only login9 lives
  const alive = (): boolean => true
  const table: Array<[string, R, (h: string) => boolean, boolean]> = [
    ['running, local head, host dead', { state: 'running', host: 'login1x', slurmJobId: null }, dead, true],
    ['armed, local head, host dead (no TTL would end it)', { state: 'armed', host: 'login2', slurmJobId: null }, dead, true],
    ['host still alive (or dead for less than the setting)', { state: 'running', host: 'login2', slurmJobId: null }, alive, false],
    ['a Slurm head: squeue answers from any node', { state: 'running', host: 'login2', slurmJobId: '42' }, dead, false],
    ['already ended', { state: 'completed', host: 'login2', slurmJobId: null }, dead, false],
    ['expired', { state: 'expired', host: 'login2', slurmJobId: null }, dead, false],
    ['this node\'s own host: its pid and lock decide', { state: 'running', host: 'login3', slurmJobId: null }, dead, false],
    ['own host, other spelling', { state: 'running', host: 'LOGIN3.cluster.example', slurmJobId: null }, dead, false]
  ]
  for (const [name, run, hostAlive, ends] of table) {
    const got = hostDeadEnd(run, 'login3', hostAlive)
    t.same(got, ends ? { state: 'killed', reason: HOST_DEAD_REASON } : null, name)
  }
})

t.test('host names: first label, any case', async t => {
  t.ok(sameHost('login1', 'login1.example.org'))
  t.ok(sameHost('Login1', 'login1'))
  t.notOk(sameHost('login1', 'login10'))
})

t.test('the watch: dead since the last node went, or since watching began; alive again at once', async t => {
  let now = 1000
  const w = new HostWatch(() => now)
  w.update(['a', 'b.example.org'])
  const steps: Array<[number, string[] | null, Record<string, number | null>]> = [
    // [clock, new live list (null: no change), expected deadForMs per host]
    [1000, null, { a: null, b: null, c: 0 }],
    [2000, ['a', 'b'], { a: null, b: null, c: 1000 }],
    [3000, ['b'], { a: 0, b: null, c: 2000 }],
    [7000, null, { a: 4000, b: null, c: 6000 }],
    [8000, ['a', 'b'], { a: null, b: null }],
    [9000, ['b'], { a: 0 }],
    [9500, ['b', 'c'], { a: 500, c: null }],
    [10_000, [], { a: 1000, b: 0, c: 0 }]
  ]
  for (const [clock, live, want] of steps) {
    now = clock
    if (live !== null) w.update(live)
    for (const [h, ms] of Object.entries(want)) t.equal(w.deadForMs(h), ms, `t=${clock} ${h}`)
  }
  now = 9000 + 4999
  t.ok(w.hostAlive('a', 5000), 'a (dead since 9000): 4999 ms of 5000 still counts alive')
  now = 9000 + 5000
  t.notOk(w.hostAlive('a', 5000), 'a: dead 5000 ms is dead')
  t.notOk(w.hostAlive('A.example.org', 5000), 'any spelling')
})

t.test('a host with two nodes is alive while one lives', async t => {
  let now = 0
  const w = new HostWatch(() => now)
  w.update(['x', 'x', 'y'])
  now = 100
  w.update(['x', 'y'])
  t.equal(w.deadForMs('x'), null)
  w.update(['y'])
  now = 200
  t.equal(w.deadForMs('x'), 100)
})
