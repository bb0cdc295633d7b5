// Least privilege by default (SPEC 11), end to end: the real nf-secrets against a real user-mode daemon. A wrapped
// `nextflow run` gets exactly the secrets its pipeline references (the fixture pipelines of test/fixtures/pipelines);
// a referenced name that resolves to nothing stops the run before anything is placed (exit 3); --allow-missing,
// --all and --only; `arm --pipeline`; `secrets resolve --pipeline`. Asserted on exit codes and on the names that
// reached the run's store file on disk (the fake nextflow copies it).
import t from 'tap'
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, startTestDaemon, tempDir } from '../helpers/daemon.js'
import { errorCode, json, runCli, type RunOptions, type RunResult } from '../helpers/cli.js'

t.setTimeout(600_000)
const FIX = join(ROOT, 'test', 'fixtures', 'pipelines')
const DSL2 = ['API_TOKEN', 'CONFIG_TOKEN', 'DB_PASSWORD', 'S3_KEY', 'S3_REGION_KEY', 'S3_SECRET', 'SLACK_WEBHOOK', 'TOWER_ACCESS_TOKEN']

const dir = tempDir(t)
const d = await startTestDaemon(t, { mode: 'user', dir })
// A `nextflow` that copies the run's store (whatever it got) to seen.json in its launch dir.
const bin = join(dir, 'bin')
mkdirSync(bin)
writeFileSync(join(bin, 'nextflow'), '#!/bin/sh\ncat "$NXF_SECRETS_FILE" > seen.tmp && mv seen.tmp seen.json\n')
chmodSync(join(bin, 'nextflow'), 0o755)
// An `sbatch` that copies the store it was given and prints a job id Slurm never heard of (so the bind is refused,
// the job "cancelled" by the fake scancel and the run revoked: what matters here is what reached the store first).
writeFileSync(join(bin, 'sbatch'), '#!/bin/sh\ncat "$NXF_SECRETS_FILE" > seen.json\necho 999999991\n')
writeFileSync(join(bin, 'scancel'), '#!/bin/sh\nexit 0\n')
chmodSync(join(bin, 'sbatch'), 0o755)
chmodSync(join(bin, 'scancel'), 0o755)
const work = join(dir, 'work')
mkdirSync(work)

function cli (args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return runCli(['--socket', d.socket, ...args], { cwd: work, ...opts, env: { PATH: `${bin}:${process.env.PATH}`, HOME: dir, ...opts.env } })
}
function seen (): string[] | null {
  const f = join(work, 'seen.json')
  if (!existsSync(f)) return null
  const names = (JSON.parse(readFileSync(f, 'utf8')) as Array<{ name: string }>).map(s => s.name).sort()
  rmSync(f)
  return names
}

t.before(async () => {
  for (const name of [...DSL2, 'UNUSED_KEY']) {
    const r = await cli(['secrets', 'add', name], { input: `v-${name}` })
    if (r.code !== 0) throw new Error(`secrets add ${name}: ${r.stderr}`)
  }
})

t.test('run: only what the pipeline references reaches the store', async t => {
  const r = await cli(['run', '--', 'nextflow', '-q', 'run', join(FIX, 'dsl2', 'main.nf'), '-profile', 'test'])
  t.equal(r.code, 0, r.stderr)
  t.same(seen(), DSL2, 'UNUSED_KEY was not provisioned')
  const dirAsScript = await cli(['run', '--', 'nextflow', 'run', join(FIX, 'dsl2')])
  t.equal(dirAsScript.code, 0, dirAsScript.stderr)
  t.same(seen(), DSL2, 'a pipeline dir runs its main.nf')
})

t.test('run: a referenced secret that resolves to nothing stops the run before anything is placed', async t => {
  const cmd = ['nextflow', 'run', join(FIX, 'dsl2', 'main.nf'), '-c', join(FIX, 'dsl2', 'extra.config')]
  const r = await cli(['run', '--', ...cmd])
  t.equal(r.code, 3, r.stderr)
  t.equal(errorCode(r.stderr), 'NFS_ERR_SECRET_MISSING')
  t.match(r.stderr, 'AWS_KEY_FROM_C', 'the missing name is named')
  t.equal(seen(), null, 'the command never ran')
  t.same(readdirSync(join(dir, 'runs', 'root')), [], 'no run dir was made')
  t.same(json<unknown[]>((await cli(['runs', 'list', '--all', '--json'])).stdout).filter((r: any) => r.launchDir === work && r.state !== 'completed'), [], 'no run was recorded')

  const allowed = await cli(['run', '--allow-missing', '--', ...cmd])
  t.equal(allowed.code, 0, allowed.stderr)
  t.same(seen(), DSL2, '--allow-missing: the ones that resolve')
})

t.test('--all, --only, and a command that is not a pipeline', async t => {
  const all = await cli(['run', '--all', '--', 'nextflow', 'run', join(FIX, 'dsl2', 'main.nf')])
  t.equal(all.code, 0, all.stderr)
  t.same(seen(), [...DSL2, 'UNUSED_KEY'].sort())
  const only = await cli(['run', '--only', 'UNUSED_KEY', '--all', '--', 'nextflow', 'run', join(FIX, 'nfcore')])
  t.equal(only.code, 0, only.stderr)
  t.same(seen(), ['UNUSED_KEY'], '--only wins over --all and the scan (whose names are missing here)')
  const none = await cli(['run', '--', 'sh', '-c', 'cat "$NXF_SECRETS_FILE" > seen.json'])
  t.equal(none.code, 0, none.stderr)
  t.same(seen(), [...DSL2, 'UNUSED_KEY'].sort(), 'no pipeline: every resolved secret')
  const noMain = await cli(['run', '--', 'nextflow', 'run', join(dir, 'absent.nf')])
  t.equal(noMain.code, 0, noMain.stderr)
  t.same(seen(), [...DSL2, 'UNUSED_KEY'].sort(), 'a script that cannot be read: every resolved secret')
})

t.test('arm --pipeline and the launch dir', async t => {
  const armed = await cli(['arm', '--pipeline', join(FIX, 'dsl2'), '--format', 'json'])
  t.equal(armed.code, 0, armed.stderr)
  const created = json<{ runId: string, env: { NXF_SECRETS_FILE: string } }>(armed.stdout)
  const onDisk = (JSON.parse(readFileSync(created.env.NXF_SECRETS_FILE, 'utf8')) as Array<{ name: string }>).map(s => s.name).sort()
  t.same(onDisk, DSL2)
  t.equal((await cli(['runs', 'revoke', created.runId])).code, 0)

  const fromDir = await cli(['arm', '--dir', join(FIX, 'nfcore'), '--format', 'json'])
  t.equal(fromDir.code, 3, 'the launch dir\'s main.nf references names nobody stored')
  t.equal(errorCode(fromDir.stderr), 'NFS_ERR_SECRET_MISSING')
})

t.test('launch: the daemon-hosted command gets only the referenced names', async t => {
  const r = await cli(['launch', '--detach', '--', 'nextflow', 'run', join(FIX, 'dsl2', 'main.nf')])
  t.equal(r.code, 0, r.stderr)
  const deadline = Date.now() + 60_000
  while (!existsSync(join(work, 'seen.json')) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 100))
  t.same(seen(), DSL2)
  const missing = await cli(['launch', '--detach', '--', 'nextflow', 'run', join(FIX, 'nfcore')])
  t.equal(missing.code, 3, missing.stderr)
  t.equal(errorCode(missing.stderr), 'NFS_ERR_SECRET_MISSING')
})

t.test('sbatch --pipeline: only the referenced names reach the store; a missing one stops it before sbatch runs', async t => {
  const head = join(work, 'head.sh')
  writeFileSync(head, '#!/bin/sh\nnextflow run main.nf\n')
  const missing = await cli(['sbatch', '--pipeline', join(FIX, 'nfcore'), head])
  t.equal(missing.code, 3, missing.stderr)
  t.equal(errorCode(missing.stderr), 'NFS_ERR_SECRET_MISSING')
  t.equal(seen(), null, 'sbatch never ran')
  const r = await cli(['sbatch', '--pipeline', join(FIX, 'dsl2', 'main.nf'), head])
  t.same(seen(), DSL2, 'what the job would have got')
  t.not(r.code, 0, 'a job Slurm does not know is not bound (its run is revoked)')
  t.same(readdirSync(join(dir, 'runs', 'root')), [], 'nothing left')
})

t.test('secrets resolve --pipeline: what a run would get and what is missing', async t => {
  const r = await cli(['secrets', 'resolve', '--pipeline', join(FIX, 'nfcore'), '--json'])
  t.equal(r.code, 0, r.stderr)
  const res = json<{ secrets: Array<{ name: string }>, missing: string[] }>(r.stdout)
  t.same(res.secrets, [])
  t.same(res.missing, ['BENCHLING_API_KEY', 'BENCHLING_ENDPOINT', 'BENCHLING_TENANT', 'NOTIFY_EMAIL_PASSWORD'])
  const ok = await cli(['secrets', 'resolve', '--pipeline', join(FIX, 'dsl2', 'main.nf'), '--json'])
  t.same(json<{ secrets: Array<{ name: string }> }>(ok.stdout).secrets.map(s => s.name).sort(), DSL2)
  const human = await cli(['secrets', 'resolve', '--pipeline', join(FIX, 'nfcore')])
  t.equal(human.code, 0)
  t.match(human.stdout, /BENCHLING_API_KEY\s+MISSING/)
  const nowhere = await cli(['secrets', 'resolve', '--pipeline', join(dir, 'nowhere')])
  t.equal(nowhere.code, 2)
  t.equal(errorCode(nowhere.stderr), 'NFS_ERR_INVALID_PATH')
})
