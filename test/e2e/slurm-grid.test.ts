// The grid path end to end with a real Slurm: in system mode alice arms a run, an sbatch job submitted as alice reads
// the `.nf-<hash>.secrets` export file beside the store the way a Nextflow task wrapper does, the run ends, and the
// whole run dir is gone. bob's job cannot read alice's store.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { ensureUsers } from '../helpers/users.js'
import * as needs from '../helpers/requires.js'
import { CLI_BIN, startTestDaemon, socketGet } from '../helpers/daemon.js'
import { forOthers } from '../helpers/for-others.js'
import { runCli } from '../helpers/cli.js'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import { waitFor } from '../helpers/wait.js'
import { ledgerText } from '../helpers/ledger-file.js'

needs.requireRoot(t)
needs.requireSlurm(t)

/** System mode reads its key from a file an admin made: make one for the test daemon. */
function systemConfig (t: { teardown: (fn: () => void) => void }): Record<string, unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-key-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const keyFile = join(dir, 'master.key')
  writeFileSync(keyFile, randomBytes(32).toString('base64') + '\n', { mode: 0o600 })
  return { keyFile, runs: { livenessIntervalMs: 300 } }
}

function requireSlurm (): void {
  const r = spawnSync('sinfo', ['-h', '-o', '%T'], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error('Slurm is not running: run scripts/ci/start-slurm.sh (as root) first')
}

/** Submit a bash job script as `user` and wait for it to end. */
function sbatchWait (user: string, dir: string, name: string, body: string): void {
  const script = join(dir, `${name}.sh`)
  writeFileSync(script, `#!/bin/bash\n${body}\n`, { mode: 0o700 })
  const [u] = ensureUsers([user])
  chownSync(script, u!.uid, u!.gid)
  execFileSync('runuser', ['-u', user, '--', 'sbatch', '--wait', '--quiet', `--chdir=${dir}`, `--output=${join(dir, `${name}.out`)}`, script], {
    timeout: 120_000,
    // A job inherits the submitter's environment: keep tap's loader hooks out of it.
    env: { PATH: process.env.PATH, LANG: 'C.UTF-8' }
  })
}

t.test('a Slurm job of alice reads her run\'s secret through Nextflow\'s export file; bob\'s cannot', async t => {
  requireSlurm()
  const [alice, bob] = ensureUsers(['alice', 'bob'])
  const d = await startTestDaemon(t, { mode: 'system', config: systemConfig(t) })
  const canary = `CANARY-slurm-${Date.now()}`
  const add = await runCli(['--socket', d.socket, 'secrets', 'add', 'API_TOKEN'], { user: 'alice', input: canary })
  t.equal(add.code, 0, add.stderr)

  const aliceDir = join(d.dir, 'alice-launch')
  const bobDir = join(d.dir, 'bob-work')
  for (const [dir, u] of [[aliceDir, alice!], [bobDir, bob!]] as const) {
    mkdirSync(dir, { mode: 0o700 })
    chownSync(dir, u.uid, u.gid)
  }
  const arm = await runCli(['--socket', d.socket, 'arm', '--dir', aliceDir, '--format', 'json'], { user: 'alice' })
  t.equal(arm.code, 0, arm.stderr)
  const run = JSON.parse(arm.stdout) as { runId: string, sessionId: string, env: Record<string, string> }
  const store = run.env.NXF_SECRETS_FILE!
  const runDir = dirname(store)

  // What Nextflow's head writes beside the store for grid tasks: `export NAME="value"`, 0600, the user's.
  const exportFile = join(runDir, '.nf-3f0c2a5e9b1d4c7a8e6f0b2d4c6a8e0f.secrets')
  writeFileSync(exportFile, `export API_TOKEN="${canary}"\n`, { mode: 0o600 })
  chownSync(exportFile, alice!.uid, alice!.gid)

  // The line Nextflow renders into .command.run for `secret 'API_TOKEN'`; the job records a digest, not the value.
  sbatchWait('alice', aliceDir, 'task', [
    `source /dev/stdin <<<"$(cat <(grep -w -e 'API_TOKEN=.*' ${exportFile}))"`,
    'printf %s "$API_TOKEN" | sha256sum | cut -d" " -f1 > seen.sha256'
  ].join('\n'))
  const seen = readFileSync(join(aliceDir, 'seen.sha256'), 'utf8').trim()
  t.equal(seen, createHash('sha256').update(canary).digest('hex'), 'the task on the grid saw the value')

  sbatchWait('bob', bobDir, 'snoop', `cat ${store} > stolen.txt 2>/dev/null; echo "rc=$?" > rc.txt; ls ${runDir} >> rc.txt 2>&1 || true`)
  t.notMatch(readFileSync(join(bobDir, 'rc.txt'), 'utf8'), /rc=0/, 'bob cannot read alice\'s store')
  t.notMatch(readFileSync(join(bobDir, 'stolen.txt'), 'utf8'), canary)

  // Nextflow starts with the run's NXF_UUID and ends OK: the daemon ends the run and removes the whole dir.
  const nf = await startFakeNextflow({ launchDir: aliceDir, sessionId: run.sessionId, uid: alice!.uid, gid: alice!.gid })
  t.teardown(() => nf.close())
  const state = async (): Promise<string> => (JSON.parse((await socketGet(d.socket, `/api/v1/runs/${run.runId}`)).body) as { state: string }).state
  await waitFor('running', async () => (await state()) === 'running', 60_000, 200)
  await nf.finish('OK')
  await waitFor('completed', async () => (await state()) === 'completed', 60_000, 200)
  await waitFor('run dir removed', () => !existsSync(runDir), 60_000, 200)
  t.notOk(existsSync(exportFile), 'the export file went with the run dir')
  t.notMatch(d.log(), canary, 'the value is not in the daemon log')
  t.notMatch(ledgerText(d.stateDir), canary, 'nor in the ledger')
})

t.test('armed inside an sbatch job: the run follows the Slurm job (SLURM_JOB_ID)', async t => {
  requireSlurm()
  const [alice] = ensureUsers(['alice'])
  const d = await startTestDaemon(t, { mode: 'system', config: systemConfig(t) })
  const dir = join(d.dir, 'head')
  mkdirSync(dir, { mode: 0o700 })
  chownSync(dir, alice!.uid, alice!.gid)
  // The Nextflow head as an sbatch job: it arms, then (here) sleeps and exits without Nextflow ever starting.
  sbatchWait('alice', dir, 'head', [
    `${process.execPath} ${forOthers(CLI_BIN)} --socket ${d.socket} arm --format json > armed.json`,
    'sleep 2'
  ].join('\n'))
  const armed = JSON.parse(readFileSync(join(dir, 'armed.json'), 'utf8')) as { runId: string, env: Record<string, string> }
  const view = async (): Promise<{ state: string, slurmJobId: string | null }> => JSON.parse((await socketGet(d.socket, `/api/v1/runs/${armed.runId}`)).body)
  t.match((await view()).slurmJobId, /^\d+$/, 'the job id was recorded')
  await waitFor('expired once the job is gone', async () => (await view()).state === 'expired', 60_000, 200)
  await waitFor('run dir removed', () => !existsSync(dirname(armed.env.NXF_SECRETS_FILE!)), 60_000, 200)
})
