// An arm's history mark (how many records the launch dir's history held when it was armed) is read while the intent is
// written, and recorded with the first placement (issue 18): the intent does not wait for the read, a run still being
// placed claims no history line by its mark, and the mark is in the record before the arm is answered.
import t from 'tap'
import { SecretValue } from '../../daemon/secret-value.js'
import { caller, fakeProbes, runsFixture } from '../helpers/runs.js'

t.test('the intent goes out before the history is read; the first placement records the mark', async t => {
  const probes = fakeProbes()
  let release: (n: number) => void = () => {}
  let asked = 0
  probes.historyMark = async () => { asked++; return await new Promise<number>(resolve => { release = resolve }) }
  const f = await runsFixture(t, { probes })
  await f.store.createSecret('user:root', 'TOKEN', new SecretValue('CANARY-history-mark'), 'root')
  const created = f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, only: ['TOKEN'] })
  let answered = false
  void created.then(() => { answered = true }, () => {})
  // The intent is in the ledger while the history read is still held.
  const deadline = Date.now() + 10_000
  while (f.ledger.all().length === 0 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 5))
  const intent = f.ledger.all()[0]
  t.ok(intent !== undefined, 'the intent was written while the history was still being read')
  t.equal(asked, 1, 'the history was read once')
  t.equal(intent?.historyMark, null, 'the intent has no mark yet')
  t.same(Object.values(intent?.targets ?? {}).map(x => x?.state), ['provisioning'], 'and its target is being placed')
  await new Promise(resolve => setTimeout(resolve, 50))
  t.notOk(answered, 'the arm is not answered before the mark is known')
  release(7)
  const run = await created
  const rec = f.ledger.get(run.runId)
  t.equal(rec?.historyMark, 7, 'the mark is recorded')
  t.same(Object.values(rec?.targets ?? {}).map(x => x?.state), ['provisioned'], 'with the placement')
})

t.test('a run without targets gets its mark in its intent', async t => {
  const probes = fakeProbes()
  probes.historyMark = async () => 3
  const f = await runsFixture(t, { probes, configure: c => ({ ...c, runs: { ...c.runs, defaultTargets: [] } }) })
  const run = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, targets: [] })
  t.equal(f.ledger.get(run.runId)?.historyMark, 3)
})

t.test('a history that cannot be read leaves the run placed, without a mark, and the target not blamed', async t => {
  const probes = fakeProbes()
  probes.historyMark = async () => { throw Object.assign(new Error('EIO: i/o error, close'), { code: 'EIO' }) }
  const f = await runsFixture(t, { probes })
  await f.store.createSecret('user:root', 'TOKEN', new SecretValue('CANARY-history-unreadable'), 'root')
  const run = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, only: ['TOKEN'] })
  const rec = f.ledger.get(run.runId)
  t.equal(rec?.historyMark, null, 'no mark')
  t.same([rec?.state, Object.values(rec?.targets ?? {}).map(x => x?.state)], ['armed', ['provisioned']], 'armed and placed')
})
