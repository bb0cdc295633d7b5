// Auto-runs (SPEC section 8) as root in system mode with real users: a start nobody armed, in a watched dir whose
// watch names targets, is provisioned for the dir's owner to the targets that still help (memory here; hpc is
// dropped) and revoked at its end; a non-member gets a run.skipped event and nothing else; an armed run claims its
// start; an auto-run is not read as dead while it is being provisioned.
import t from 'tap'
import { chownSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { createMemoryTarget } from '../../adapters/memory.js'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import { requireUsers } from '../helpers/requires.js'
import { labWatchFixture, projectDir, waitFor } from '../helpers/watch.js'
import { UserDirectory } from '../../daemon/identity/users.js'
import { claimedBy, lateTargets } from '../../daemon/watch/auto-run.js'

const [alice, bob] = requireUsers(t, ['alice', 'bob'])

t.test('lateTargets and claimedBy are pure rules', async t => {
  t.same(lateTargets(['hpc', 'aws', 'memory']), ['aws', 'memory'])
  t.same(lateTargets(['hpc']), [])
  const rec = { index: 3, timestamp: '2026-01-01 00:00:00', duration: null, runName: 'a_b', status: 'running' as const, revisionId: 'x', sessionId: 'u1', command: 'c' }
  const run = (over: Record<string, unknown>): never => ({ state: 'armed', launchDir: '/d', sessionId: 'other', runName: null, historyMark: 0, targets: {}, ...over }) as never
  t.ok(claimedBy([run({ sessionId: 'u1', state: 'running', runName: 'x' })], '/d', rec), 'by session UUID')
  t.ok(claimedBy([run({ runName: 'a_b', state: 'running' })], '/d', rec), 'by runName')
  t.ok(claimedBy([run({ historyMark: 3 })], '/d', rec), 'a resume: the first new line after the mark')
  t.notOk(claimedBy([run({ historyMark: 4 })], '/d', rec), 'a line before the mark is not the armed run\'s')
  t.notOk(claimedBy([run({ state: 'completed' })], '/d', rec), 'an ended run claims nothing')
  t.notOk(claimedBy([run({})], '/elsewhere', rec), 'another dir')
  // Its mark comes with its first placement: until then (null) an armed run claims no line by it, as nothing it
  // started can have written one. By session UUID or runName (an auto-run being placed) it still claims its own.
  const placing = { memory: { state: 'provisioning' } }
  t.notOk(claimedBy([run({ historyMark: null, targets: placing })], '/d', rec), 'a run still being placed claims no line by a mark')
  t.ok(claimedBy([run({ historyMark: null, targets: { memory: { state: 'provisioned' } } })], '/d', rec), 'placed, a run without a mark claims the line (a record from before marks)')
  t.ok(claimedBy([run({ runName: 'a_b', targets: placing })], '/d', rec), 'an auto-run being placed claims its own start by runName')
})

t.test('an unclaimed start becomes an auto-run of the owner, revoked at its end; a non-member is refused with an event', async t => {
  const f = await labWatchFixture(t, ['hpc', 'memory'])
  const dirs = { alice: join(f.root, 'alice-proj'), bob: join(f.root, 'bob-proj'), armed: join(f.root, 'alice-armed') }
  for (const [who, d] of Object.entries(dirs)) {
    mkdirSync(d)
    const u = who === 'bob' ? bob! : alice!
    chownSync(d, u.uid, u.gid)
  }
  // Each new dir is watched before Nextflow writes in it (not a fixed pause).
  await waitFor('the new dirs to be watched', () => Object.values(dirs).every(d => f.service.watcher.watched(`root:${f.root}`)[d] !== undefined))

  const nf = await startFakeNextflow({ launchDir: dirs.alice, uid: alice!.uid, gid: alice!.gid })
  t.teardown(() => nf.close())
  await waitFor('the auto-run', () => f.ledger.all().some(r => r.mode === 'auto' && r.launchDir === dirs.alice && r.state === 'running' && r.runName !== null))
  const auto = f.ledger.all().find(r => r.mode === 'auto')!
  t.equal(auto.user, 'alice')
  t.equal(auto.workspace, 'lab')
  t.same(Object.keys(auto.targets), ['memory'], 'hpc cannot help a started run and is dropped')
  t.equal(auto.runName, nf.runName)
  t.equal(f.memory.placed.get(auto.runId)?.get('LAB_TOKEN'), 'lab-secret-1', 'provisioned to the memory target')
  await nf.finish('OK')
  await waitFor('the end', () => f.ledger.get(auto.runId)?.state === 'completed' && f.ledger.get(auto.runId)?.targets.memory?.state === 'revoked')
  t.notOk(f.memory.placed.has(auto.runId), 'revoked at its end')

  const nb = await startFakeNextflow({ launchDir: dirs.bob, uid: bob!.uid, gid: bob!.gid })
  t.teardown(() => nb.close())
  await waitFor('run.skipped for bob', () => f.events.some(e => e.type === 'run.skipped' && e.user === 'bob'))
  const skipped = f.events.find(e => e.type === 'run.skipped' && e.user === 'bob')!
  t.match(skipped.reason, /^NFS_ERR_FORBIDDEN/, 'the event says why')
  t.equal(skipped.workspace, 'lab')
  t.notOk(f.ledger.all().some(r => r.user === 'bob'), 'nothing was provisioned for bob')

  const users = new UserDirectory({ mode: 'system', adminGroup: 'nf-secrets-admin', daemonUid: 0 })
  const created = await f.runs.create(users.callerForUid(alice!.uid), { mode: 'arm', launchDir: dirs.armed, targets: ['memory'], workspace: 'lab' })
  const na = await startFakeNextflow({ launchDir: dirs.armed, uid: alice!.uid, gid: alice!.gid, sessionId: created.sessionId })
  t.teardown(() => na.close())
  await waitFor('the armed run starts', () => f.ledger.get(created.runId)?.state === 'running')
  // The auto-run room's decision on this start, once it is made: only then can the absence of an auto-run be told.
  await waitFor('the decision on the armed start', () => f.autoRuns.some(d => d.launchDir === dirs.armed && d.runName === na.runName))
  t.same(f.autoRuns.filter(d => d.launchDir === dirs.armed).map(d => ({ outcome: d.outcome, runId: d.runId })), [{ outcome: 'claimed', runId: created.runId }], 'claimed by the armed run')
  t.equal(f.ledger.all().filter(r => r.launchDir === dirs.armed).length, 1, 'the armed run claims its start: no auto-run')
})

t.test('an auto-run checked while it is still being provisioned is not read as dead', async t => {
  // Provisioning held open by the test: the monitor checks the run meanwhile, as its pass or a file event may.
  const memory = createMemoryTarget()
  const place = memory.provision.bind(memory)
  let entered: (runId: string) => void = () => {}
  const provisioning = new Promise<string>(resolve => { entered = resolve })
  let release: () => void = () => {}
  const gate = new Promise<void>(resolve => { release = resolve })
  memory.provision = async (run, secrets, opts) => {
    await opts?.ready
    entered(run.runId)
    await gate
    return await place(run, secrets)
  }
  const f = await labWatchFixture(t, ['memory'], { memory })
  const dir = await projectDir(f, 'alice-proj', alice!)
  const nf = await startFakeNextflow({ launchDir: dir, uid: alice!.uid, gid: alice!.gid })
  t.teardown(() => { release(); return nf.close() })
  const runId = await provisioning
  // Two passes' readings in a row: a run that looks dead on both is ended (run-check.ts). Before the fix the run had neither
  // its runName (set only after provisioning) nor Nextflow's session, so both said dead and it was killed, revoked.
  await f.monitor.tick()
  await f.monitor.tick()
  t.equal(f.ledger.get(runId)?.state, 'running', 'still running while being provisioned')
  t.equal(f.ledger.get(runId)?.runName, nf.runName, 'born with the runName of its history line')
  release()
  await waitFor('the decision', () => f.autoRuns.some(d => d.launchDir === dir))
  t.same(f.autoRuns.map(d => ({ outcome: d.outcome, runId: d.runId })), [{ outcome: 'provisioned', runId }])
  t.equal(f.memory.placed.get(runId)?.get('LAB_TOKEN'), 'lab-secret-1', 'provisioned')
  await nf.finish('OK')
  await waitFor('the end', () => f.ledger.get(runId)?.state === 'completed' && f.ledger.get(runId)?.targets.memory?.state === 'revoked')
})
