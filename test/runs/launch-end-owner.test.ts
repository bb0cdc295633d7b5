// A launched run's end is its host's to record: the PtyHost ends it when the command exits, with the command's status
// (for a command adopted after a restart, by polling its wrapper every second). The monitor, woken by file events in
// the launch dir, must not end it first as `killed` on a dead pid reading: the status would be lost. Seen under a
// booted systemd (test/container/): a launched command writing in its launch dir as it exited, just after a restart,
// ended with no exit code.
import t from 'tap'
import { caller, runsFixture } from '../helpers/runs.js'

t.test('while the host holds a launched run, dead pid readings do not end it; once it lets go, they do', async t => {
  const f = await runsFixture(t)
  let held = true
  f.runs.setHost({ stop: async () => {}, holds: () => held })
  const { runId } = await f.runs.create(caller(), { mode: 'launch', launchDir: f.launchDir, command: ['true'] })
  f.probes.alive.add(4242)
  await f.runs.markStarted(runId, { pid: 4242 })
  f.probes.alive.delete(4242)
  // Dead readings on two passes in a row end an unheld run (the first only makes it suspect: run-check.ts).
  for (let i = 0; i < 3; i++) await f.monitor.tick()
  t.equal(f.ledger.get(runId)?.state, 'running', 'kept for the host to end with the status')
  held = false
  for (let i = 0; i < 2; i++) await f.monitor.tick()
  t.equal(f.ledger.get(runId)?.state, 'killed', 'the monitor is still the floor')
})
