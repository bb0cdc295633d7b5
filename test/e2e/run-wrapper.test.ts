// `nf-secrets run` over a real socket: the command gets the run's env and store, its exit status is ours, the run is
// revoked when it ends; a SIGKILLed wrapper does not revoke while the Nextflow session lives; values never in argv.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { CLI_BIN, ROOT, socketGet, startTestDaemon, tempDir } from '../helpers/daemon.js'
import { runCli } from '../helpers/cli.js'
import { ME } from '../helpers/users.js'
import { parseExposition, sample } from '../helpers/prom-text.js'
import { waitFor } from '../helpers/wait.js'

const MINI_NEXTFLOW = join(ROOT, 'test', 'fixtures', 'mini-nextflow.py')

/** Every process's argv, as /proc shows it to anyone on the host. */
function allCmdlines (): string {
  let out = ''
  for (const pid of readdirSync('/proc').filter(p => /^\d+$/.test(p))) {
    try { out += readFileSync(`/proc/${pid}/cmdline`, 'latin1') + '\n' } catch { /* gone */ }
  }
  return out
}

t.test('run: env, store, exit status, revoke at the end, no value in any argv', async t => {
  const dir = tempDir(t)
  const d = await startTestDaemon(t, { mode: 'user', dir })
  const canary = `CANARY-argv-${process.pid}`
  t.equal((await runCli(['--socket', d.socket, 'secrets', 'add', 'API_TOKEN'], { input: canary })).code, 0)
  let scans = 0
  let leaked = false
  const scanner = setInterval(() => { scans++; if (allCmdlines().includes(canary)) leaked = true }, 20)
  t.teardown(() => clearInterval(scanner))
  const r = await runCli(['--socket', d.socket, 'run', '--', 'sh', '-c', 'cat "$NXF_SECRETS_FILE" > seen.json; echo "$NXF_UUID $NF_SECRETS_RUN_ID" > ids.txt; sleep 0.5; exit 7'], { cwd: dir })
  clearInterval(scanner)
  t.equal(r.code, 7, 'the command\'s own status')
  const seen = JSON.parse(readFileSync(join(dir, 'seen.json'), 'utf8')) as Array<{ name: string, value: string }>
  t.same(seen, [{ name: 'API_TOKEN', value: canary }])
  const [uuid, runId] = readFileSync(join(dir, 'ids.txt'), 'utf8').trim().split(' ')
  t.match(uuid, /^[0-9a-f-]{36}$/)
  const run = JSON.parse((await socketGet(d.socket, `/api/v1/runs/${runId}`)).body) as { state: string, exitCode: number, targets: { hpc: { state: string } } }
  t.equal(run.state, 'failed')
  t.equal(run.exitCode, 7)
  t.equal(run.targets.hpc.state, 'revoked')
  t.same(readdirSync(join(dir, 'runs', ME)), [], 'the run dir is gone')
  t.ok(scans > 5, `argv was scanned ${scans} times during the run`)
  t.notOk(leaked, 'the value never appeared in any process argv')
  for (const file of ['runs.json', 'runs.journal', 'audit.log']) t.notMatch(readFileSync(join(d.stateDir, file), 'utf8'), canary, file)
  t.notMatch(d.log(), canary)
  t.notMatch(r.stdout + r.stderr, canary)
})

t.test('a SIGKILLed wrapper: the run stays while the Nextflow session lives, and is revoked when it ends', async t => {
  const dir = tempDir(t)
  const d = await startTestDaemon(t, { mode: 'user', dir, config: { runs: { livenessIntervalMs: 200 } } })
  t.equal((await runCli(['--socket', d.socket, 'secrets', 'add', 'DB_PASS'], { input: 'hunter2' })).code, 0)
  const wrapper = spawn(process.execPath, [CLI_BIN, '--socket', d.socket, 'run', '--', MINI_NEXTFLOW], {
    cwd: dir, stdio: 'ignore', env: { PATH: process.env.PATH, HOME: process.env.HOME }
  })
  t.teardown(() => { writeFileSync(join(dir, 'finish'), '') })
  await waitFor('the session to start', () => existsSync(join(dir, 'store-seen.txt')), 60_000, 50)
  const runs = JSON.parse((await socketGet(d.socket, '/api/v1/runs')).body) as Array<{ runId: string, state: string }>
  const runId = runs[0]!.runId
  wrapper.kill('SIGKILL')
  await new Promise(resolve => wrapper.once('exit', resolve))
  // Several monitor passes go by with the wrapper dead and the session lock held (counted by the daemon's metrics,
  // not waited for by time: a pass that came after a fixed sleep let broken code pass).
  const passes = async (): Promise<number> => sample(parseExposition((await socketGet(d.socket, '/metrics')).body), 'nfsecretsd_monitor_passes_total')
  const from = await passes()
  await waitFor('five monitor passes', async () => await passes() >= from + 5, 60_000, 50)
  const kept = JSON.parse((await socketGet(d.socket, `/api/v1/runs/${runId}`)).body) as { state: string, launchDir: string }
  t.equal(kept.state, 'running', 'the session is alive: the run and its secrets stay')
  t.equal(readdirSync(join(dir, 'runs', ME)).length, 1)
  writeFileSync(join(dir, 'finish'), '')
  await waitFor('the run to end', async () => (JSON.parse((await socketGet(d.socket, `/api/v1/runs/${runId}`)).body) as { state: string }).state === 'completed', 60_000, 50)
  await waitFor('the run dir to go', () => readdirSync(join(dir, 'runs', ME)).length === 0, 60_000, 50)
  t.pass('completed and revoked after the session ended')
  t.equal(resolve(kept.launchDir), resolve(dir))
})
