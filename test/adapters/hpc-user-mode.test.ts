// The hpc target in user mode, as a contributor without root runs it (no test users needed): the runs root is made
// on the first provision when missing, under the unit's UMask=0077 too, and looked at first on every later one (issue
// 18); a half-made `.new` dir of an earlier try of the same run, or a symlink in its place, is replaced on retry.
import t from 'tap'
import type { Test } from 'tap'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { createHpcTarget } from '../../adapters/hpc.js'
import type { TargetRun } from '../../adapters/types.js'
import { SecretValue } from '../../daemon/secret-value.js'

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

t.test('a half-made dir of an earlier try of the same run, or a symlink in its place, is replaced', async t => {
  const dir = top(t)
  const runsRoot = join(dir, 'runs')
  const target = createHpcTarget({ runsRoot, privileged: false, nodeId: 'node-a', logger: pino({ level: 'silent' }) })
  await target.provision(runOf('R0000000000021'), secrets({ AA: 'x' }))
  const userDir = join(runsRoot, 'alice')
  const half = join(userDir, '.R0000000000022.node-a.new')
  mkdirSync(half, { mode: 0o700 })
  writeFileSync(join(half, '.store.json.staged'), 'CANARY-half', { mode: 0o600 })
  const p = await target.provision(runOf('R0000000000022'), secrets({ TOKEN: 'CANARY-new' }))
  t.match(readFileSync(p.env.NXF_SECRETS_FILE!, 'utf8'), /CANARY-new/, 'the new store is placed')
  t.notOk(existsSync(half), 'the half-made dir is gone')
  const victim = join(dir, 'victim')
  mkdirSync(victim)
  writeFileSync(join(victim, 'keep'), 'keep')
  symlinkSync(victim, join(userDir, '.R0000000000023.node-a.new'))
  await target.provision(runOf('R0000000000023'), secrets({ TOKEN: 'x' }))
  t.equal(readFileSync(join(victim, 'keep'), 'utf8'), 'keep', 'a symlink in its place is not followed')
  t.same(readdirSync(victim), ['keep'], 'nothing was made through it')
  t.same(readdirSync(userDir).sort(), ['R0000000000021', 'R0000000000022', 'R0000000000023'], 'only the run dirs are left')
})
