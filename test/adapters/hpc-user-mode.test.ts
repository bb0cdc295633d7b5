// The hpc target in user mode, as a contributor without root runs it (no test users needed): the runs root is made
// on the first provision when missing, under the unit's UMask=0077 too, and looked at first on every later one (issue
// 18); a half-made `.new` dir of an earlier try of the same run, or a symlink in its place, is replaced on retry.
import t from 'tap'
import type { Test } from 'tap'
import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { pino } from 'pino'
import { createHpcTarget } from '../../adapters/hpc.js'
import type { TargetRun } from '../../adapters/types.js'
import { SecretValue } from '../../daemon/secret-value.js'
import { checkHalfMadeRetry } from '../helpers/hpc-retry.js'

const me = { name: 'alice', uid: process.getuid!(), gid: process.getgid!() }

function runOf (runId: string): TargetRun {
  return { runId, sessionId: '6f1d2c3b-0000-4000-8000-00000000abcd', user: me.name, uid: me.uid, gid: me.gid, workspace: 'personal', launchDir: '/tmp', host: 'h', names: [] }
}

const secrets = (obj: Record<string, string>): Map<string, SecretValue> => new Map(Object.entries(obj).map(([k, v]) => [k, new SecretValue(v)]))

function top (t: Test): string {
  const dir = mkdtempSync('/tmp/nfs-hpc-user-')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('a missing runs root is made 0700 (its parents too) under UMask=0077; an existing one is only looked at', async t => {
  const dir = top(t)
  const runsRoot = join(dir, 'state', 'nested', 'runs')
  const target = createHpcTarget({ runsRoot, privileged: false, logger: pino({ level: 'silent' }) })
  const old = process.umask(0o077)
  t.teardown(() => { process.umask(old) })
  const p = await target.provision(runOf('R0000000000041'), secrets({ TOKEN: 'CANARY-user-1' }))
  for (const d of [join(dir, 'state'), join(dir, 'state', 'nested'), runsRoot, join(runsRoot, 'alice')]) {
    t.equal(statSync(d).mode & 0o777, 0o700, `${d.slice(dir.length)} 0700`)
  }
  t.equal(statSync(p.env.NXF_SECRETS_FILE!).mode & 0o777, 0o600, 'the store 0600')
  // The user may widen their own root (a group-shared scratch dir): a later arm leaves it as it is.
  chmodSync(runsRoot, 0o750)
  await target.provision(runOf('R0000000000042'), secrets({ TOKEN: 'CANARY-user-2' }))
  t.equal(statSync(runsRoot).mode & 0o777, 0o750, 'an existing root keeps its mode')
})

// The run dir's mode is set only when mkdir's 0700 lost something to the umask (store-staging.ts): a umask that takes
// from the owner's bits still gives a run dir of 0700 and a store of 0600.
t.test('a umask that narrows the owner\'s bits still gives a 0700 run dir and a 0600 store', async t => {
  const dir = top(t)
  const target = createHpcTarget({ runsRoot: join(dir, 'runs'), privileged: false, logger: pino({ level: 'silent' }) })
  const old = process.umask(0o277)
  t.teardown(() => { process.umask(old) })
  const p = await target.provision(runOf('R0000000000043'), secrets({ TOKEN: 'CANARY-user-3' }))
  t.equal(statSync(dirname(p.env.NXF_SECRETS_FILE!)).mode & 0o7777, 0o700, 'the run dir 0700')
  t.equal(statSync(p.env.NXF_SECRETS_FILE!).mode & 0o777, 0o600, 'the store 0600')
})

t.test('a half-made dir of an earlier try of the same run, or a symlink in its place, is replaced', async t => {
  const dir = top(t)
  const runsRoot = join(dir, 'runs')
  const target = createHpcTarget({ runsRoot, privileged: false, nodeId: 'node-a', logger: pino({ level: 'silent' }) })
  await checkHalfMadeRetry(t, { target, top: dir, runsRoot, runOf })
})
