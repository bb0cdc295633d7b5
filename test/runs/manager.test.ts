import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createMemoryTarget } from '../../adapters/memory.js'
import { intentRecord } from '../../daemon/runs/provision.js'
import type { Target } from '../../adapters/types.js'
import { SecretValue } from '../../daemon/secret-value.js'
import type { TargetName } from '../../daemon/types.js'
import { caller, runsFixture } from '../helpers/runs.js'
import { codeOf } from '../helpers/code-of.js'
import { ledgerText } from '../helpers/ledger-file.js'

t.test('arm: user over workspace, --only, lastUsed, events without values', async t => {
  const f = await runsFixture(t)
  await f.store.createWorkspace('lab', 'root')
  await f.store.setMember('lab', 'root', 'launch')
  await f.store.createSecret('workspace:lab', 'API_TOKEN', new SecretValue('ws-token'), 'root')
  await f.store.createSecret('workspace:lab', 'DB_PASS', new SecretValue('ws-db'), 'root')
  await f.store.createSecret('user:root', 'API_TOKEN', new SecretValue('CANARY-user-token'), 'root')
  const created = await f.runs.create(caller(), { mode: 'arm', workspace: 'lab', launchDir: f.launchDir })
  t.same(created.secrets.sort(), ['API_TOKEN', 'DB_PASS'])
  t.equal(created.env.NXF_UUID, created.sessionId)
  t.equal(created.env.NF_SECRETS_RUN_ID, created.runId)
  t.match(created.runId, /^[0-9A-Za-z]{14}$/)
  const placed = f.memory.placed.get(created.runId)!
  t.equal(placed.get('API_TOKEN'), 'CANARY-user-token', 'the user secret wins')
  t.equal(placed.get('DB_PASS'), 'ws-db')
  t.ok(f.store.getSecret('user:root', 'API_TOKEN')?.lastUsed, 'lastUsed is set')
  const run = f.ledger.get(created.runId)!
  t.equal(run.state, 'armed')
  t.equal(run.targets.memory?.state, 'provisioned')
  // The store's writes above have their secret.* events too: every change of the store or ledger shows (events.ts).
  t.same(f.events.filter(e => e.type.startsWith('run.')).map(e => e.type), ['run.provisioned', 'run.armed'])
  for (const file of ['runs.json', 'runs.journal', 'audit.log']) t.notMatch(readFileSync(join(f.config.stateDir, file), 'utf8'), 'CANARY')
  t.notMatch(JSON.stringify(f.events), 'CANARY')

  const only = await f.runs.create(caller(), { mode: 'arm', workspace: 'lab', launchDir: f.launchDir, only: ['DB_PASS'] })
  t.same([...f.memory.placed.get(only.runId)!.keys()], ['DB_PASS'])
  const before = f.ledger.all().length
  t.equal(await codeOf(f.runs.create(caller(), { mode: 'arm', workspace: 'lab', launchDir: f.launchDir, only: ['DB_PASS', 'NOPE'] })), 'NFS_ERR_UNKNOWN_SECRET')
  t.equal(f.ledger.all().length, before, 'an unknown name fails before anything is recorded or placed')
})

t.test('access and input checks', async t => {
  const f = await runsFixture(t)
  await f.store.createWorkspace('lab', 'root')
  await f.store.setMember('lab', 'root', 'view')
  t.equal(await codeOf(f.runs.create(caller(), { mode: 'arm', workspace: 'lab', launchDir: f.launchDir })), 'NFS_ERR_FORBIDDEN', 'view cannot launch')
  t.equal(await codeOf(f.runs.create(caller(), { mode: 'arm', workspace: 'nope', launchDir: f.launchDir })), 'NFS_ERR_WORKSPACE_NOT_FOUND')
  t.equal(await codeOf(f.runs.create(caller(), { mode: 'arm', launchDir: 'relative' })), 'NFS_ERR_INVALID_PATH')
  t.equal(await codeOf(f.runs.create(caller(), { mode: 'arm', launchDir: join(f.dir, 'missing') })), 'NFS_ERR_INVALID_PATH')
  t.equal(await codeOf(f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, targets: ['aws'] })), 'NFS_ERR_INVALID_TARGET')
  const mine = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  t.equal(await codeOf(Promise.resolve().then(() => f.runs.get(caller('bob'), mine.runId))), 'NFS_ERR_RUN_NOT_FOUND', 'another user cannot see it')
  t.equal(await codeOf(f.runs.revoke(caller('bob'), mine.runId)), 'NFS_ERR_RUN_NOT_FOUND', 'nor revoke it')
  t.equal((await f.runs.get(caller('admin', { isAdmin: true }), mine.runId)).runId, mine.runId, 'an admin can')
})

t.test('all or nothing: a failing target leaves nothing placed and the run failed', async t => {
  const f = await runsFixture(t)
  await f.store.createSecret('user:root', 'GOOD', new SecretValue('g'), 'root')
  await f.store.createSecret('user:root', 'BAD', new SecretValue('b'), 'root')
  f.memory.options.failProvisionOn = 'BAD'
  t.equal(await codeOf(f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })), 'NFS_ERR_PROVISION_FAILED')
  t.equal(f.memory.placed.size, 0)
  const [run] = f.ledger.all()
  t.equal(run?.state, 'failed')
  t.equal(run?.targets.memory?.state, 'revoked')
})

t.test('finish: exit codes map to states, and the run is revoked', async t => {
  const f = await runsFixture(t)
  await f.store.createSecret('user:root', 'A_B', new SecretValue('v'), 'root')
  const cases: Array<[{ exitCode?: number, signal?: string }, string]> = [[{ exitCode: 0 }, 'completed'], [{ exitCode: 1 }, 'failed'], [{ signal: 'SIGTERM' }, 'killed'], [{ exitCode: 137 }, 'killed']]
  for (const [end, state] of cases) {
    const r = await f.runs.create(caller(), { mode: 'run', launchDir: f.launchDir })
    t.equal(f.ledger.get(r.runId)?.state, 'running')
    const v = await f.runs.finish(caller(), r.runId, end)
    t.equal(v.state, state, JSON.stringify(end))
    t.equal(v.targets.memory?.state, 'revoked')
    t.notOk(f.memory.placed.has(r.runId))
  }
})

t.test('finish keeps a run whose Nextflow session outlives the wrapper (-bg), the monitor ends it later', async t => {
  const f = await runsFixture(t)
  const r = await f.runs.create(caller(), { mode: 'run', launchDir: f.launchDir })
  f.probes.lockHeld = true
  const kept = await f.runs.finish(caller(), r.runId, { exitCode: 0 })
  t.equal(kept.state, 'running')
  t.ok(f.memory.placed.has(r.runId))
  await f.monitor.tick()
  t.equal(f.ledger.get(r.runId)?.state, 'running', 'lock held: alive')
  f.probes.lockHeld = false
  await f.monitor.tick()
  t.equal(f.ledger.get(r.runId)?.state, 'running', 'one dead reading is not enough')
  await f.monitor.tick()
  t.equal(f.ledger.get(r.runId)?.state, 'completed', 'the wrapper exit code decides once the session is gone')
  t.notOk(f.memory.placed.has(r.runId))
  t.equal(f.monitor.passes, 3, 'three passes counted (nfsecretsd_monitor_passes_total), the last once its revoke ended')
})

t.test('the monitor: history lines end runs, TTL expires armed runs, Slurm job gone', async t => {
  const f = await runsFixture(t)
  const armed = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  const rec = { index: 0, timestamp: '2026-11-25 12:00:01', duration: null, runName: 'mad_turing', status: 'running' as const, revisionId: 'abc', sessionId: armed.sessionId, command: 'nextflow run x' }
  f.probes.observation = { history: rec, historyCount: 1, log: null, pidFile: null }
  await f.monitor.tick()
  t.equal(f.ledger.get(armed.runId)?.state, 'running')
  t.equal(f.ledger.get(armed.runId)?.runName, 'mad_turing')
  f.probes.lockHeld = true
  f.probes.observation = { ...f.probes.observation, history: { ...rec, status: 'ERR' } }
  await f.monitor.tick()
  t.equal(f.ledger.get(armed.runId)?.state, 'failed', 'ERR ends it at once')
  t.notOk(f.memory.placed.has(armed.runId))

  f.probes.observation = { history: null, historyCount: 1, log: null, pidFile: null }
  const idle = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, ttlSeconds: 60 })
  await f.monitor.tick()
  t.equal(f.ledger.get(idle.runId)?.state, 'armed')
  f.now.t += 61_000
  await f.monitor.tick()
  t.equal(f.ledger.get(idle.runId)?.state, 'expired')
  t.notOk(f.memory.placed.has(idle.runId))

  f.probes.slurm = 'running'
  const slurm = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, slurmJobId: '42' })
  await f.monitor.tick()
  t.equal(f.ledger.get(slurm.runId)?.state, 'armed')
  f.probes.slurm = 'gone'
  await f.monitor.tick()
  t.equal(f.ledger.get(slurm.runId)?.state, 'expired', 'the sbatch job ended before Nextflow started')
  f.probes.slurm = 'unknown'
  const unsure = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, slurmJobId: '43' })
  await f.monitor.tick()
  t.equal(f.ledger.get(unsure.runId)?.state, 'armed', 'a Slurm outage revokes nothing')
})

t.test('revoke failures are retried with backoff until done', async t => {
  const f = await runsFixture(t)
  const r = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  f.memory.options.failRevokeTimes = 2
  const v = await f.runs.revoke(caller(), r.runId)
  t.equal(v.state, 'killed')
  t.equal(v.targets.memory?.state, 'revoke_failed')
  t.equal(v.targets.memory?.attempts, 1)
  t.ok(f.events.some(e => e.type === 'run.revoke_failed'))
  f.now.t += 10_000
  await f.monitor.tick()
  t.equal(f.ledger.get(r.runId)?.targets.memory?.state, 'revoke_failed')
  f.now.t += 10_000
  await f.monitor.tick()
  t.equal(f.ledger.get(r.runId)?.targets.memory?.state, 'revoked')
  t.ok(f.events.some(e => e.type === 'run.revoked'))
})

t.test('restart: reconcile ends interrupted provisions and keeps live runs', async t => {
  const f = await runsFixture(t)
  const live = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  // A provision interrupted by a crash: the intent is in the ledger, the target may hold something.
  await f.ledger.insert({ ...f.ledger.get(live.runId)!, runId: 'CRASHED0000001', targets: { memory: { state: 'provisioning', attempts: 0, nextAttemptAt: null, lastError: null, refs: [], revokedAt: null } } })
  f.memory.placed.set('CRASHED0000001', new Map([['X', 'y']]))
  const g = await f.reopen()
  await g.monitor.reconcile()
  t.equal(g.ledger.get('CRASHED0000001')?.state, 'failed')
  t.equal(g.ledger.get('CRASHED0000001')?.targets.memory?.state, 'revoked')
  t.notOk(g.memory.placed.has('CRASHED0000001'))
  t.equal(g.ledger.get(live.runId)?.state, 'armed', 'a live armed run is kept')
  t.ok(g.memory.placed.has(live.runId))
})

t.test('terminal runs are pruned after the retention period', async t => {
  const f = await runsFixture(t)
  const r = await f.runs.create(caller(), { mode: 'run', launchDir: f.launchDir })
  await f.runs.finish(caller(), r.runId, { exitCode: 0 })
  await f.monitor.tick()
  t.ok(f.ledger.get(r.runId))
  f.now.t += 31 * 86_400_000
  await f.monitor.tick()
  t.equal(f.ledger.get(r.runId), undefined)
})

t.test('the first target prepares while the intent is written; ready opens only once the intent is on disk', async t => {
  const memory = createMemoryTarget()
  // What the target sees: whether it was called before the intent was on disk, and whether it was after `ready`.
  const seen: Array<{ calledBeforeIntent: boolean, intentOnDiskAtReady: boolean }> = []
  let stateDir = ''
  const probing: Target = {
    ...memory,
    async provision (run, secrets, opts = {}) {
      const onDisk = (): boolean => ledgerText(stateDir).includes(run.runId)
      const calledBeforeIntent = !onDisk()
      await opts.ready
      seen.push({ calledBeforeIntent, intentOnDiskAtReady: onDisk() })
      return await memory.provision(run, secrets)
    }
  }
  const f = await runsFixture(t, { targets: new Map<TargetName, Target>([['memory', probing]]), memory })
  stateDir = f.config.stateDir
  await f.store.createSecret('user:root', 'TOKEN', new SecretValue('CANARY-overlap'), 'root')
  for (let i = 0; i < 5; i++) await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir })
  t.equal(seen.length, 5)
  t.ok(seen.every(s => s.intentOnDiskAtReady), 'ready never opened before the intent was on disk')
  t.ok(seen.some(s => s.calledBeforeIntent), 'the target was started before the intent landed (the overlap)')
  const audit = readFileSync(join(f.config.stateDir, 'audit.log'), 'utf8')
  t.equal(audit.split('\n').filter(l => l.includes('"run.provision"')).length, 5, 'one audit line per run, on disk at the answer')
})

t.test('intentRecord: the write-ahead record of a new run, armed or running', async t => {
  const base = {
    runId: 'R0000000000009',
    sessionId: '6f1d2c3b-0000-4000-8000-00000000abcd',
    caller: caller('alice', { uid: 1001, gid: 1001 }),
    workspace: 'lab',
    host: 'login-1',
    names: ['B_TOKEN', 'A_TOKEN'],
    targets: ['hpc', 'aws'] as TargetName[],
    now: new Date('2026-11-26T03:00:00Z'),
    ttlSeconds: 900,
    pid: 0,
    pidStart: null,
    historyMark: 42
  }
  const armed = intentRecord({ ...base, req: { mode: 'arm', launchDir: '/work/l' } })
  t.same([armed.state, armed.startedAt, armed.expiresAt], ['armed', null, '2026-11-26T03:15:00.000Z'])
  t.same(Object.values(armed.targets).map(x => x?.state), ['provisioning', 'provisioning'], 'every target is an intent')
  t.equal(armed.pid, null, 'pid 0 is no pid')
  t.same(armed.names, ['B_TOKEN', 'A_TOKEN'])
  t.same(armed.env, { NXF_UUID: base.sessionId, NF_SECRETS_RUN_ID: base.runId })
  const running = intentRecord({ ...base, pid: 4242, pidStart: 7, req: { mode: 'run', launchDir: '/work/l', slurmJobId: '77' } })
  t.same([running.state, running.startedAt, running.expiresAt, running.pid, running.pidStart, running.slurmJobId], ['running', '2026-11-26T03:00:00.000Z', null, 4242, 7, '77'])
})

t.test('an auto-run whose start was already made into a run, since archived, is refused and places nothing', async t => {
  const f = await runsFixture(t)
  await f.store.createSecret('user:root', 'API_TOKEN', new SecretValue('CANARY-auto-token'), 'root')
  const req = { mode: 'auto' as const, launchDir: f.launchDir, autoSessionId: '0c9e4a52-5d6b-4a8e-9d2f-7b1e3c4a5f60', runName: 'happy_turing' }
  const first = await f.runs.create(caller(), req)
  await f.runs.revoke(caller(), first.runId)
  t.equal(await f.ledger.archive!.move([first.runId], new Date(f.now.t + 3_600_000)), 1, 'the settled run left the hot set')
  t.equal(f.ledger.get(first.runId), undefined)
  f.memory.placed.clear()
  t.equal(await codeOf(f.runs.create(caller(), req)), 'NFS_ERR_CONFLICT', 'the same start again is refused')
  t.equal(f.memory.placed.size, 0, 'nothing placed again')
  t.equal(f.ledger.get(first.runId), undefined, 'no second record of the run')
})
