// The retry of an hpc provision that finds a half-made `.new` dir of an earlier try of the same run (a crash between
// making it and its rename), or a symlink in its place: the dir is replaced, the symlink unlinked, never followed.
// Shared by the root case (test/adapters/hpc.test.ts) and the user-mode one, which runs without root.
import type { Test } from 'tap'
import { existsSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Target, TargetRun } from '../../adapters/types.js'
import { SecretValue } from '../../daemon/secret-value.js'

/** `target` has nodeId 'node-a' and a runs root `runsRoot` inside `top`; `runOf` makes a run of user alice. */
export async function checkHalfMadeRetry (t: Test, o: { target: Target, top: string, runsRoot: string, runOf: (runId: string) => TargetRun }): Promise<void> {
  const one = (v: string): Map<string, SecretValue> => new Map([['TOKEN', new SecretValue(v)]])
  await o.target.provision(o.runOf('R0000000000021'), one('x'))
  const userDir = join(o.runsRoot, 'alice')
  const half = join(userDir, '.R0000000000022.node-a.new')
  mkdirSync(half, { mode: 0o700 })
  writeFileSync(join(half, '.store.json.staged'), 'CANARY-half', { mode: 0o600 })
  const p = await o.target.provision(o.runOf('R0000000000022'), one('CANARY-new'))
  t.match(readFileSync(p.env.NXF_SECRETS_FILE!, 'utf8'), /CANARY-new/, 'the new store is placed')
  t.notOk(existsSync(half), 'the half-made dir is gone')
  const victim = join(o.top, 'victim')
  mkdirSync(victim)
  writeFileSync(join(victim, 'keep'), 'keep')
  symlinkSync(victim, join(userDir, '.R0000000000023.node-a.new'))
  await o.target.provision(o.runOf('R0000000000023'), one('x'))
  t.same([readdirSync(victim), readFileSync(join(victim, 'keep'), 'utf8')], [['keep'], 'keep'], 'a symlink in its place is not followed')
  t.same(readdirSync(userDir).sort(), ['R0000000000021', 'R0000000000022', 'R0000000000023'], 'only the run dirs are left')
}
