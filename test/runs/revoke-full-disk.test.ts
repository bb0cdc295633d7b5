// Revoking on a full state disk: revocation is idempotent, so it does not wait for the ledger. The state dir is a
// real tiny tmpfs filled to the last byte; the hpc run dirs live elsewhere (as the runs root usually does).
import t from 'tap'
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { createHpcTarget } from '../../adapters/hpc.js'
import type { Target } from '../../adapters/types.js'
import { SecretValue } from '../../daemon/secret-value.js'
import type { RunRecord, TargetName } from '../../daemon/types.js'
import { caller, runsFixture, type RunsFixture, type Teardown } from '../helpers/runs.js'
import { tempDir, tinyTmpfs } from '../store/helpers.js'
import { fillDisk } from '../helpers/fill-disk.js'
import { requireRoot } from '../helpers/requires.js'
import { ledgerOnDisk } from '../helpers/ledger-file.js'

requireRoot(t) // a tmpfs mount

/**
 * Take the last byte of a filesystem; returns the filler to remove. The audit log's own last page is filled too
 * (with empty lines), or an append would still fit there.
 */
function fill (dir: string): string {
  const filler = fillDisk(dir)
  try {
    for (;;) appendFileSync(join(dir, 'state', 'audit.log'), '\n')
  } catch {}
  return filler
}

function onDisk (f: RunsFixture, runId: string): RunRecord | undefined {
  return (ledgerOnDisk(f.config.stateDir) as unknown as { runs: RunRecord[] }).runs.find(r => r.runId === runId)
}

function audited (f: RunsFixture, runId: string): boolean {
  return readFileSync(join(f.config.stateDir, 'audit.log'), 'utf8').split('\n').some(l => l.includes('"run.revoke"') && l.includes(runId))
}

async function setup (t: Teardown): Promise<{ f: RunsFixture, dir: string, runDir: (runId: string) => string, userDir: string }> {
  const dir = tinyTmpfs(t, '256k')
  const runsRoot = join(tempDir(t, 'nfs-runs-root-'), 'runs')
  const hpc = createHpcTarget({ runsRoot, privileged: false, logger: pino({ level: 'silent' }) })
  const f = await runsFixture(t, { dir, targets: new Map<TargetName, Target>([['hpc', hpc]]) })
  mkdirSync(f.launchDir, { recursive: true })
  await f.store.createSecret('user:root', 'TOKEN', new SecretValue('CANARY-full-disk'), 'root')
  return { f, dir, runDir: runId => join(runsRoot, 'root', runId), userDir: join(runsRoot, 'root') }
}

t.test('a revoke on a full disk removes the run dir at once; the ledger says so once space returns', async t => {
  const { f, dir, runDir } = await setup(t)
  const { runId } = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, targets: ['hpc'] })
  t.ok(existsSync(runDir(runId)), 'the run dir is there')
  const filler = fill(dir)

  const view = await f.runs.revoke(caller(), runId)
  t.same([view.state, view.targets.hpc?.state], ['killed', 'revoked'], 'the answer says killed and revoked')
  t.notOk(existsSync(runDir(runId)), 'the run dir is gone while the disk is still full')
  t.equal(onDisk(f, runId)?.state, 'armed', 'the ledger on disk could not record it')
  t.equal(f.ledger.get(runId)?.state, 'killed', 'memory has the new state')
  t.same(f.ledger.unsynced(), [runId])
  t.ok(f.runs.revoker.deferredCounts.ledger > 0 && f.runs.revoker.deferredCounts.audit === 1, 'counted')
  t.notOk(audited(f, runId), 'the audit line waits too')

  await f.monitor.tick()
  t.equal(onDisk(f, runId)?.state, 'armed', 'a pass while the disk is still full changes nothing on disk')

  rmSync(filler)
  await f.monitor.tick()
  const rec = onDisk(f, runId)
  t.same([rec?.state, rec?.targets.hpc?.state], ['killed', 'revoked'], 'the next pass wrote it')
  t.ok(audited(f, runId), 'and the audit line')
  t.same(f.ledger.unsynced(), [])
})

t.test('a run that ends on its own on a full disk is revoked the same way', async t => {
  const { f, dir, runDir } = await setup(t)
  const { runId } = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, targets: ['hpc'] })
  const filler = fill(dir)
  const run = await f.runs.end(runId, 'completed', 'history OK')
  t.equal(run.targets.hpc?.state, 'revoked')
  t.notOk(existsSync(runDir(runId)))
  rmSync(filler)
  // Any later successful write carries what memory held ahead of disk: here, the next arm's intent.
  await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, targets: ['hpc'] })
  t.equal(onDisk(f, runId)?.targets.hpc?.state, 'revoked')
  t.same(f.ledger.unsynced(), [])
})

t.test('a restart before space returns revokes again, which finds nothing and succeeds', async t => {
  const { f, dir, runDir } = await setup(t)
  const { runId } = await f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, targets: ['hpc'] })
  const filler = fill(dir)
  await f.runs.revoke(caller(), runId)
  t.notOk(existsSync(runDir(runId)))
  const g = await f.reopen()
  t.equal(g.ledger.get(runId)?.state, 'armed', 'the restart lost the unrecorded end')
  rmSync(filler)
  const again = await g.runs.revoke(caller(), runId)
  t.same([again.state, again.targets.hpc?.state], ['killed', 'revoked'])
  t.equal(onDisk(g, runId)?.targets.hpc?.state, 'revoked', 'recorded durably this time')
  t.same(g.ledger.unsynced(), [])
})

t.test('arming on a full disk is still refused before anything is placed (the intent must be durable)', async t => {
  const { f, dir, userDir } = await setup(t)
  fill(dir)
  await t.rejects(f.runs.create(caller(), { mode: 'arm', launchDir: f.launchDir, targets: ['hpc'] }), { code: 'NFS_ERR_STORAGE' })
  t.same(f.ledger.all(), [], 'nothing recorded, nothing in memory')
  // The hpc target prepared the run dir while the intent was being written; the failed intent made it discard it.
  t.same(existsSync(userDir) ? readdirSync(userDir) : [], [], 'no run dir, staged or not, is left')
})
