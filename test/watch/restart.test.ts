// A daemon restarted while runs are armed or running: the new watch room (and monitor) pick them up from the
// ledger and still end them correctly from their files, with the run dirs gone.
import t from 'tap'
import { existsSync, mkdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { SecretValue } from '../../daemon/secret-value.js'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import { caller } from '../helpers/runs.js'
import { waitFor, watchFixture, type WatchFixture } from '../helpers/watch.js'

const done = (f: WatchFixture, runId: string, end: string): boolean =>
  f.ledger.get(runId)?.state === end && Object.values(f.ledger.get(runId)!.targets).every(x => x?.state === 'revoked')

for (const poll of [false, true]) {
  t.test(`${poll ? 'polling' : 'native'}: armed and running runs survive a restart and end correctly`, async t => {
    const f = await watchFixture(t, { watch: [{ poll, intervalMs: 200 }] })
    await f.store.createSecret('user:root', 'API_TOKEN', new SecretValue('restart-secret'), 'root')
    const dirA = join(f.root, 'a')
    const dirB = join(f.root, 'b')
    const outside = join(f.dir, 'outside')
    for (const d of [dirA, dirB, outside]) mkdirSync(d)
    const a = await f.runs.create(caller(), { mode: 'arm', launchDir: dirA, targets: ['hpc'] })
    const b = await f.runs.create(caller(), { mode: 'arm', launchDir: dirB, targets: ['hpc'] })
    const c = await f.runs.create(caller(), { mode: 'arm', launchDir: outside, targets: ['hpc'] })
    const nb = await startFakeNextflow({ launchDir: dirB, sessionId: b.sessionId })
    t.teardown(() => nb.close())
    await waitFor('b running', () => f.ledger.get(b.runId)?.state === 'running')

    const g = await f.restart()
    t.equal(g.ledger.get(a.runId)?.state, 'armed')
    t.equal(g.ledger.get(b.runId)?.state, 'running')
    const na = await startFakeNextflow({ launchDir: dirA, sessionId: a.sessionId })
    t.teardown(() => na.close())
    const nc = await startFakeNextflow({ launchDir: outside, sessionId: c.sessionId })
    t.teardown(() => nc.close())
    await waitFor('a running', () => g.ledger.get(a.runId)?.state === 'running')
    await waitFor('c running', () => g.ledger.get(c.runId)?.state === 'running')
    await na.finish('OK')
    await nb.finish('ERR')
    await nc.finish('OK')
    await waitFor('a completed', () => done(g, a.runId, 'completed'))
    await waitFor('b failed', () => done(g, b.runId, 'failed'))
    await waitFor('c completed', () => done(g, c.runId, 'completed'))
    for (const r of [a, b, c]) t.notOk(existsSync(dirname(r.env.NXF_SECRETS_FILE!)), `${r.runId}: the run dir is gone`)
  })
}
