// How many durable ledger writes stand between a run's end and its secrets going: one. The end marks the targets
// `revoking` in the same write, so the target is touched right after it; `revoked` follows in a second write.
// A retry of revoke_failed goes straight to the target too, and its outcome is the one write.
import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import type { RunRecord } from '../../daemon/types.js'
import { caller, runsFixture, type RunsFixture } from '../helpers/runs.js'
import { ledgerOnDisk } from '../helpers/ledger-file.js'

function onDisk (f: RunsFixture, runId: string): RunRecord {
  return (ledgerOnDisk(f.config.stateDir) as unknown as { runs: RunRecord[] }).runs.find(r => r.runId === runId)!
}

t.test('an end is one write before the target is touched, and one after', async t => {
  const f = await runsFixture(t)
  const { runId } = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  const armed = onDisk(f, runId)
  t.equal(armed.targets.memory?.state, 'provisioned')
  f.memory.options.delayMs = 300
  const ending = f.runs.end(runId, 'completed', 'history OK')
  while (!f.memory.calls.some(c => c.op === 'revoke' && c.runId === runId)) await sleep(5)
  const mid = onDisk(f, runId)
  t.same([mid.state, mid.targets.memory?.state, mid.version], ['completed', 'revoking', armed.version + 1], 'the end and `revoking` in one write, on disk before the target is touched')
  const done = await ending
  t.same([done.targets.memory?.state, done.version], ['revoked', armed.version + 2])
  t.same(onDisk(f, runId).targets.memory?.state, 'revoked')
  t.notOk(f.memory.placed.has(runId))
})

t.test('a failed revoke is retried without a write of its own before the target', async t => {
  const f = await runsFixture(t)
  const { runId } = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  f.memory.options.failRevokeTimes = 1
  const failed = await f.runs.end(runId, 'killed', 'test')
  t.equal(failed.targets.memory?.state, 'revoke_failed')
  const retried = await f.runs.revoker.revoke(runId)
  t.same([retried.targets.memory?.state, retried.version], ['revoked', failed.version + 1])
  t.equal(onDisk(f, runId).targets.memory?.state, 'revoked')
})

t.test('a terminal run whose target still says provisioned (an older daemon\'s record) gets its `revoking` write', async t => {
  const f = await runsFixture(t)
  const { runId } = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  const cur = f.ledger.get(runId)!
  await f.ledger.update(runId, cur.version, r => ({ ...r, state: 'killed', endedAt: new Date().toISOString() }))
  const ended = f.ledger.get(runId)!
  t.equal(ended.targets.memory?.state, 'provisioned')
  const done = await f.runs.revoker.revoke(runId)
  t.same([done.targets.memory?.state, done.version], ['revoked', ended.version + 2])
})
