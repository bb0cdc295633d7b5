// A target that refuses before placing anything (NFS_ERR_TARGET_UNAVAILABLE: the aws target without a region or
// credentials) holds nothing, and neither do the targets after it that were never called: they are recorded as
// revoked at once instead of being retried for ever. Any other failure still goes through a real revoke.
import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createMemoryTarget } from '../../adapters/memory.js'
import type { Target } from '../../adapters/types.js'
import { nfsError } from '../../daemon/errors.js'
import { SecretValue } from '../../daemon/secret-value.js'
import type { TargetName } from '../../daemon/types.js'
import { caller, runsFixture } from '../helpers/runs.js'

/** A stand-in for `aws` that fails every provision with `code` and counts the calls it gets. */
function failingTarget (code: 'NFS_ERR_TARGET_UNAVAILABLE' | 'NFS_ERR_PROVISION_FAILED'): Target & { calls: { provision: number, revoke: number } } {
  const calls = { provision: 0, revoke: 0 }
  return {
    name: 'aws',
    calls,
    provision: async () => { calls.provision++; throw nfsError(code, ['aws', 'test']) },
    revoke: async () => { calls.revoke++; throw nfsError('NFS_ERR_REVOKE_FAILED', ['aws', 'no region']) },
    sweep: async () => 0,
    status: async () => ({ usable: false, detail: 'test' }),
    close: async () => {}
  }
}

async function attempt (t: Test, order: TargetName[], code: 'NFS_ERR_TARGET_UNAVAILABLE' | 'NFS_ERR_PROVISION_FAILED') {
  const memory = createMemoryTarget()
  const aws = failingTarget(code)
  const f = await runsFixture(t, { memory, targets: new Map<TargetName, Target>([['memory', memory], ['aws', aws]]) })
  await f.store.createSecret('user:root', 'API_TOKEN', new SecretValue('CANARY-token'), 'root')
  const err = await f.runs.create(caller(), { mode: 'run', launchDir: f.launchDir, targets: order }).then(() => null, (e: { code?: string }) => e.code)
  t.equal(err, code, 'the request fails with the target\'s code')
  const [run] = f.ledger.all()
  return { run: run!, aws, memory, f }
}

t.test('refused after another target placed: that one is revoked, the refusing one is not retried', async t => {
  const { run, aws, memory } = await attempt(t, ['memory', 'aws'], 'NFS_ERR_TARGET_UNAVAILABLE')
  t.equal(run.state, 'failed')
  t.same([run.targets.memory?.state, run.targets.aws?.state], ['revoked', 'revoked'])
  t.equal(memory.placed.size, 0, 'what the memory target held is gone')
  t.equal(aws.calls.revoke, 0, 'nothing to revoke where nothing was placed')
})

t.test('refused first: the target after it was never called and holds nothing', async t => {
  const { run, aws } = await attempt(t, ['aws', 'memory'], 'NFS_ERR_TARGET_UNAVAILABLE')
  t.same([run.state, run.targets.aws?.state, run.targets.memory?.state], ['failed', 'revoked', 'revoked'])
  t.equal(aws.calls.revoke, 0)
})

t.test('a provision that failed part-way is still revoked for real', async t => {
  const { run, aws, f } = await attempt(t, ['memory', 'aws'], 'NFS_ERR_PROVISION_FAILED')
  t.equal(aws.calls.revoke, 1, 'the failing target may hold something: its revoke runs')
  t.equal(run.targets.aws?.state, 'revoke_failed', 'and is retried while it fails')
  t.equal(run.targets.memory?.state, 'revoked')
  // The audit log reads as what happened: the provision (written once the intent was), then the undoing.
  const lines = readFileSync(join(f.config.stateDir, 'audit.log'), 'utf8').trim().split('\n').map(l => JSON.parse(l) as { action: string, runId?: string, target?: string })
  t.same(lines.filter(l => l.runId === run.runId).map(l => [l.action, l.target ?? null]), [['run.provision', null], ['run.revoke', 'memory']])
})
