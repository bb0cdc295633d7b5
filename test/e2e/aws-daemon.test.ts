// The aws target end to end through a real nf-secretsd (user mode) and the real nf-secrets CLI, against moto's
// server: `run --target hpc,aws` gives the command both targets and takes both away at its end; `arm` then
// `runs revoke`; `runs show` lists the ARNs; `status` says whether the target is usable; a daemon without a region
// refuses with NFS_ERR_TARGET_UNAVAILABLE and leaves nothing; the orphan sweep at start and on its timer.
import t, { type Test } from 'tap'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js'
import { errorCode, json, runCli, spawnCli } from '../helpers/cli.js'
import { MOTO_ACCOUNT, MOTO_REGION, getValue, listAll, smCall, startMoto } from '../helpers/moto.js'
import { AWS_ENV, addSecrets, awsConfig, tagsOf, waitForMoto } from '../helpers/aws-daemon.js'
import { requireMoto } from '../helpers/requires.js'
import { waitFor } from '../helpers/wait.js'

// Many daemon and CLI processes: on a loaded CI machine this file takes minutes, not tap's default two.
t.setTimeout(900_000)
requireMoto(t)
const moto = await startMoto(t)
const me = spawnSync('id', ['-un'], { encoding: 'utf8' }).stdout.trim()
const HOST = hostname()

interface RunView {
  runId: string
  state: string
  names: string[]
  targets: Record<string, { state: string, refs: Array<{ name: string, ref: string }> }>
}

async function awsDaemon (tt: Test, extra: Record<string, unknown> = {}, dir?: string): Promise<TestDaemon> {
  return await startTestDaemon(tt, { mode: 'user', config: awsConfig(moto.endpoint, extra), env: AWS_ENV, ...(dir !== undefined ? { dir } : {}) })
}

function cli (d: TestDaemon, args: string[], opts: { cwd?: string, input?: string } = {}) {
  return runCli(['--socket', d.socket, ...args], opts)
}

/** The daemon log never holds a value. */
function noLeak (tt: Test, d: TestDaemon, values: Iterable<string>): void {
  const log = d.log()
  tt.notOk([...values].some(v => log.includes(v)), 'no value in the daemon log')
}

t.beforeEach(async () => { await moto.reset() })

t.test('run --target hpc,aws: the command gets both; at its exit moto and the run dir are empty', async t => {
  const d = await awsDaemon(t)
  const values = await addSecrets(d.socket, 3)
  const work = tempDir(t)
  const envFile = join(work, 'env.txt')
  const go = join(work, 'go')
  const script = `printf '%s\\n' "$NXF_SECRETS_FILE" "$NF_SECRETS_AWS_PREFIX" "$NF_SECRETS_RUN_ID" > ${envFile}; ` +
    `while [ ! -e ${go} ]; do sleep 0.05; done; exit 7`
  const run = spawnCli(t, ['--socket', d.socket, 'run', '--target', 'hpc,aws', '--', 'sh', '-c', script], { cwd: work })
  await waitFor('the env file', () => existsSync(envFile) && readFileSync(envFile, 'utf8').split('\n').length >= 4, 30_000, 50)
  const [storeFile, awsPrefix, runId] = readFileSync(envFile, 'utf8').split('\n') as [string, string, string]
  t.match(runId, /^[0-9A-Za-z]{14}$/)
  t.equal(storeFile, join(d.dir, 'runs', me, runId, 'store.json'), 'NXF_SECRETS_FILE is the run\'s hpc store')
  t.equal(awsPrefix, `nf-secrets/${runId}/`, 'NF_SECRETS_AWS_PREFIX is the run prefix')
  const store = json<Array<{ name: string, value: string }>>(readFileSync(storeFile, 'utf8'))
  t.same(store.map(e => [e.name, e.value]), [...values].sort(), 'the hpc store holds every value')

  const inMoto = await listAll(moto.endpoint)
  t.same(inMoto.map(s => s.Name).sort(), [...values.keys()].map(n => `${awsPrefix}${n}`))
  for (const s of inMoto) {
    const name = s.Name.slice(awsPrefix.length)
    t.equal(await getValue(moto.endpoint, s.ARN), values.get(name), `${name}: the value reached moto`)
    t.match(tagsOf(s), { 'nf-secretsd:run': runId, 'nf-secretsd:host': HOST, 'nf-secretsd:user': me, 'nf-secretsd:workspace': 'personal' })
  }

  // While it runs, `runs show --json` lists each secret's ARN, the ones moto gave out.
  const show = await cli(d, ['runs', 'show', runId, '--json'])
  t.equal(show.code, 0, show.stderr)
  const view = json<RunView>(show.stdout)
  t.equal(view.targets.aws?.state, 'provisioned')
  t.same(view.targets.aws?.refs.map(r => [r.name, r.ref]), inMoto.map(s => [s.Name.slice(awsPrefix.length), s.ARN]).sort())
  for (const r of view.targets.aws?.refs ?? []) t.match(r.ref, new RegExp(`^arn:aws:secretsmanager:${MOTO_REGION}:${MOTO_ACCOUNT}:secret:${awsPrefix}${r.name}-`))
  const human = await cli(d, ['runs', 'show', runId])
  t.match(human.stdout, /target aws: provisioned/)

  writeFileSync(go, '')
  // SIGCONT: a no-op signal, so that stop() only waits for the command and the CLI to end by themselves.
  const end = await run.stop('SIGCONT')
  t.equal(end.code, 7, 'run exits with the command\'s status')
  t.same(await listAll(moto.endpoint, true), [], 'nothing left in moto, deletions planned included')
  t.notOk(existsSync(join(d.dir, 'runs', me, runId)), 'the run dir is gone')
  const after = json<RunView>((await cli(d, ['runs', 'show', runId, '--json'])).stdout)
  t.same([after.state, after.targets.hpc?.state, after.targets.aws?.state], ['failed', 'revoked', 'revoked'], 'exit 7 is a failed run, both targets revoked')
  noLeak(t, d, values.values())
})

t.test('arm --target aws, then runs revoke deletes from moto', async t => {
  const d = await awsDaemon(t)
  const values = await addSecrets(d.socket, 4)
  const work = tempDir(t)
  const arm = await cli(d, ['arm', '--target', 'aws', '--dir', work, '--format', 'json'])
  t.equal(arm.code, 0, arm.stderr)
  const created = json<{ runId: string, env: Record<string, string>, targets: string[] }>(arm.stdout)
  t.same(created.targets, ['aws'])
  t.equal(created.env.NF_SECRETS_AWS_PREFIX, `nf-secrets/${created.runId}/`)
  t.notOk('NXF_SECRETS_FILE' in created.env, 'no hpc store for an aws-only run')
  t.equal((await listAll(moto.endpoint)).length, values.size)
  const sh = await cli(d, ['arm', '--target', 'aws', '--dir', work])
  t.match(sh.stdout, /^export .*NF_SECRETS_AWS_PREFIX=nf-secrets\/[0-9A-Za-z]{14}\//, 'the sh format exports the prefix')
  const second = /NF_SECRETS_RUN_ID=([0-9A-Za-z]{14})/.exec(sh.stdout)?.[1]
  t.ok(second)

  const revoke = await cli(d, ['runs', 'revoke', created.runId])
  t.equal(revoke.code, 0, revoke.stderr)
  const left = await listAll(moto.endpoint, true)
  t.same(left.map(s => tagsOf(s)['nf-secretsd:run']), Array(values.size).fill(second), 'only the other armed run remains')
  const view = json<RunView>((await cli(d, ['runs', 'show', created.runId, '--json'])).stdout)
  t.same([view.state, view.targets.aws?.state], ['killed', 'revoked'])
  t.equal((await cli(d, ['runs', 'revoke', second!])).code, 0)
  t.same(await listAll(moto.endpoint, true), [])
  noLeak(t, d, values.values())
})

t.test('status: usable with region and credentials, not without a region; a run then fails and leaves nothing', async t => {
  const d = await awsDaemon(t)
  const status = json<{ targets: Record<string, { usable: boolean, detail: string }> }>((await cli(d, ['status', '--json'])).stdout)
  t.same(status.targets.aws, { usable: true, detail: `region ${MOTO_REGION}` })
  t.match((await cli(d, ['status'])).stdout, /aws: usable: region us-east-1/)
  await d.stop()

  const bare = await startTestDaemon(t, { mode: 'user', env: AWS_ENV })
  const st = json<{ targets: Record<string, { usable: boolean, detail: string }> }>((await cli(bare, ['status', '--json'])).stdout)
  t.equal(st.targets.aws?.usable, false)
  t.match(st.targets.aws?.detail, /region/)
  t.match((await cli(bare, ['status'])).stdout, /aws: not usable: no region/)
  t.equal(st.targets.hpc?.usable, true, 'hpc is unaffected')

  await addSecrets(bare.socket, 2)
  const work = tempDir(t)
  const run = await cli(bare, ['run', '--target', 'hpc,aws', '--', 'sh', '-c', `touch ${join(work, 'ran')}`], { cwd: work })
  t.equal(errorCode(run.stderr), 'NFS_ERR_TARGET_UNAVAILABLE', run.stderr)
  t.equal(run.code, 1)
  t.notOk(existsSync(join(work, 'ran')), 'the command never started')
  const runs = json<RunView[]>((await cli(bare, ['runs', 'list', '--all', '--json'])).stdout)
  t.equal(runs.length, 1, 'the attempt is in the ledger')
  t.same([runs[0]!.state, runs[0]!.targets.hpc?.state, runs[0]!.targets.aws?.state], ['failed', 'revoked', 'revoked'])
  t.same(existsSync(join(bare.dir, 'runs', me)) ? spawnSync('ls', ['-A', join(bare.dir, 'runs', me)], { encoding: 'utf8' }).stdout : '', '', 'the hpc run dir placed first was removed')
  t.same(await listAll(moto.endpoint, true), [], 'and nothing reached moto')
})

t.test('policy list and render through the daemon use its prefix and region', async t => {
  const d = await awsDaemon(t, { prefix: 'tower-' })
  const list = await cli(d, ['policy', 'list'])
  t.equal(list.code, 0, list.stderr)
  t.match(list.stdout, /^NAME\s+DESCRIPTION\n/)
  t.same(json<Array<{ name: string }>>((await cli(d, ['policy', 'list', '--json'])).stdout).map(p => p.name).sort(), ['execution-role', 'instance-role', 'launcher'])
  const render = await cli(d, ['policy', 'render', 'execution-role', '--account', MOTO_ACCOUNT])
  t.equal(render.code, 0, render.stderr)
  t.match(render.stdout, `arn:aws:secretsmanager:${MOTO_REGION}:${MOTO_ACCOUNT}:secret:tower-*`)
  const withRole = await cli(d, ['policy', 'render', 'instance-role', '--account', MOTO_ACCOUNT, '--region', 'eu-west-1', '--execution-role', 'nf-exec', '--prefix', 'p/'])
  t.equal(withRole.code, 0, withRole.stderr)
  t.match(withRole.stdout, `arn:aws:iam::${MOTO_ACCOUNT}:role/nf-exec`)
  t.match(withRole.stdout, 'secret:p/*')
  const missing = await cli(d, ['policy', 'render', 'instance-role', '--account', MOTO_ACCOUNT])
  t.equal(errorCode(missing.stderr), 'NFS_ERR_BAD_REQUEST', 'instance-role needs the execution role')
  t.equal(missing.code, 2)
  const unknown = await cli(d, ['policy', 'render', 'admin', '--account', MOTO_ACCOUNT])
  t.equal(errorCode(unknown.stderr), 'NFS_ERR_POLICY_NOT_FOUND')
  t.equal(unknown.code, 3)
})

t.test('orphan sweep: at start and on its timer, only this host\'s secrets of unknown or ended runs', async t => {
  const dir = tempDir(t)
  const first = await awsDaemon(t, { sweepIntervalSeconds: 10 }, dir)
  await addSecrets(first.socket, 2)
  const work = tempDir(t)
  const arm = json<{ runId: string }>((await cli(first, ['arm', '--target', 'aws', '--dir', work, '--format', 'json'])).stdout)
  await first.stop()

  const plant = async (name: string, host: string, runId: string): Promise<void> => {
    await smCall(moto.endpoint, 'CreateSecret', {
      Name: name,
      SecretString: 'x',
      Tags: [{ Key: 'nf-secretsd:host', Value: host }, { Key: 'nf-secretsd:run', Value: runId }]
    })
  }
  await plant('nf-secrets/ORPHANxx000001/TOKEN', HOST, 'ORPHANxx000001')
  await plant('nf-secrets/ORPHANxx000002/TOKEN', 'another-login-node', 'ORPHANxx000002')
  await plant('elsewhere/ORPHANxx000003/TOKEN', HOST, 'ORPHANxx000003')

  const second = await awsDaemon(t, { sweepIntervalSeconds: 10 }, dir)
  const armed = (s: { Name: string }): boolean => s.Name.startsWith(`nf-secrets/${arm.runId}/`)
  const left = await waitForMoto(moto.endpoint, all => !all.some(s => s.Name === 'nf-secrets/ORPHANxx000001/TOKEN'))
  t.same(left.filter(s => !armed(s)).map(s => s.Name).sort(), ['elsewhere/ORPHANxx000003/TOKEN', 'nf-secrets/ORPHANxx000002/TOKEN'],
    'another host\'s secret and one outside the prefix stay')
  t.equal(left.filter(armed).length, 2, 'the armed run the ledger knows keeps its secrets')

  // The periodic pass: an orphan that appears after the start goes within one interval.
  await plant('nf-secrets/ORPHANxx000004/TOKEN', HOST, 'ORPHANxx000004')
  await waitForMoto(moto.endpoint, all => !all.some(s => s.Name === 'nf-secrets/ORPHANxx000004/TOKEN'), 25_000)
  t.pass('swept by the timer')
  t.equal((await listAll(moto.endpoint)).filter(armed).length, 2)
  await cli(second, ['runs', 'revoke', arm.runId])
  t.same((await listAll(moto.endpoint)).filter(armed), [])
})
