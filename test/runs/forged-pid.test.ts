// Attack, as bob: his own run's files name a process that is not his Nextflow (root's long-lived test process, alive
// for the whole test), in the log's `Process:` line or in `.nextflow.pid`. Before the fix that pid kept the run
// "alive" after bob's Nextflow died, and with it the workspace's secrets, for ever. Now a pid held by another
// user's process is not the run's: the run ends as killed once the session is gone.
import t from 'tap'
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SecretValue } from '../../daemon/secret-value.js'
import { UserDirectory } from '../../daemon/identity/users.js'
import { pidMayBeTheRuns } from '../../daemon/runs/observe.js'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import { requireUsers } from '../helpers/requires.js'
import { waitFor, watchFixture } from '../helpers/watch.js'

const [bob] = requireUsers(t, ['bob'])

t.test('pidMayBeTheRuns', async t => {
  t.equal(await pidMayBeTheRuns(process.pid, 0), true, 'root\'s own process, for a run of root')
  t.equal(await pidMayBeTheRuns(process.pid, bob!.uid), false, 'root\'s process is not bob\'s Nextflow')
  t.equal(await pidMayBeTheRuns(1, 0), false, 'never init')
  t.equal(await pidMayBeTheRuns(0, 0), false)
  t.equal(await pidMayBeTheRuns(2 ** 22 + 17, bob!.uid), true, 'no such process here: its probe says gone')
})

for (const where of ['log', 'pid file'] as const) {
  t.test(`a forged pid in bob's ${where} does not keep his run alive`, async t => {
    const f = await watchFixture(t, { mode: 'system', watch: [{ depth: 2 }], monitorMs: 200 })
    chmodSync(f.dir, 0o755)
    chmodSync(f.root, 0o755)
    await f.store.createWorkspace('lab', 'root')
    await f.store.setMember('lab', 'bob', 'launch')
    await f.store.createSecret('workspace:lab', 'LAB_TOKEN', new SecretValue('lab-secret-forged'), 'root')
    const dir = join(f.root, 'bob-proj')
    mkdirSync(dir)
    chownSync(dir, bob!.uid, bob!.gid)
    const users = new UserDirectory({ mode: 'system', adminGroup: 'nf-secrets-admin', daemonUid: 0 })
    const created = await f.runs.create(users.callerForUid(bob!.uid), { mode: 'arm', launchDir: dir, targets: ['memory'], workspace: 'lab' })
    const nf = await startFakeNextflow({
      launchDir: dir, uid: bob!.uid, gid: bob!.gid, sessionId: created.sessionId, ...(where === 'log' ? { processPid: process.pid } : {})
    })
    t.teardown(() => nf.close())
    if (where === 'pid file') {
      writeFileSync(join(dir, '.nextflow.pid'), `${process.pid}\n`)
      chownSync(join(dir, '.nextflow.pid'), bob!.uid, bob!.gid)
    }
    await waitFor('running', () => f.ledger.get(created.runId)?.state === 'running')
    t.not(f.ledger.get(created.runId)?.pid, process.pid, 'the forged pid is not recorded as the run\'s')
    await nf.kill()
    await waitFor('the end', () => f.ledger.get(created.runId)?.state === 'killed')
    t.notOk(f.memory.placed.has(created.runId), 'the workspace\'s secret is gone')
  })
}
