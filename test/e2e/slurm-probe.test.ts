// querySlurmJobs (one squeue for many jobs: state and owner) against a real single-node Slurm. Start one with scripts/ci/start-slurm.sh.
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { querySlurmJobs, type SlurmJobState, type SlurmQueryOptions } from '../../daemon/runs/liveness/slurm.js'
import { requireSlurm, whyNotRoot } from '../helpers/requires.js'

requireSlurm(t)

const exec = promisify(execFile)

async function slurmUp (): Promise<boolean> {
  try {
    await exec('sinfo', ['-h', '-o', '%T'], { timeout: 10_000 })
    return true
  } catch {
    return false
  }
}

/** Poll until the state is one of `want`; bounded by attempts, and the last state seen is returned. */
async function slurmJobState (jobId: string, opts: SlurmQueryOptions = {}): Promise<SlurmJobState> {
  return (await querySlurmJobs([jobId], opts))?.get(jobId)?.state ?? 'unknown'
}

async function waitFor (jobId: string, want: SlurmJobState[], attempts = 150): Promise<SlurmJobState> {
  let state: SlurmJobState = 'unknown'
  for (let i = 0; i < attempts; i++) {
    state = await slurmJobState(jobId)
    if (want.includes(state)) return state
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  return state
}

t.test('real Slurm', async (t) => {
  if (!await slurmUp()) {
    t.fail('Slurm is not answering (sinfo failed): run scripts/ci/start-slurm.sh as root first')
    return
  }
  const dir = await mkdtemp(join(tmpdir(), 'nfs-slurm-e2e-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))

  async function sbatch (...args: string[]): Promise<string> {
    const { stdout } = await exec('sbatch', ['--parsable', '-o', join(dir, 'slurm-%j.out'), ...args], { cwd: dir })
    const jobId = stdout.trim().split(';')[0] ?? ''
    t.teardown(() => exec('scancel', [jobId]).then(() => undefined, () => undefined))
    return jobId
  }

  t.test('held job is pending, released it runs, scancel makes it gone', async (t) => {
    const jobId = await sbatch('--hold', '--wrap', 'sleep 5')
    t.match(jobId, /^\d+$/)
    t.equal(await slurmJobState(jobId), 'pending', 'held: pending')
    await exec('scontrol', ['release', jobId])
    t.equal(await waitFor(jobId, ['running']), 'running', 'released: running')
    await exec('scancel', [jobId])
    t.equal(await waitFor(jobId, ['gone']), 'gone', 'cancelled: gone')
  })

  t.test('a plain sbatch --wrap "sleep 5" is pending or running, then gone after scancel', async (t) => {
    const jobId = await sbatch('--wrap', 'sleep 5')
    t.match(await slurmJobState(jobId), /^(pending|running)$/)
    await exec('scancel', [jobId])
    t.equal(await waitFor(jobId, ['gone']), 'gone')
  })

  t.test('a job that ends by itself is gone', async (t) => {
    const jobId = await sbatch('--wrap', 'true')
    t.equal(await waitFor(jobId, ['gone']), 'gone')
  })

  t.test('a job id the controller never had is gone, alone or among others', async (t) => {
    t.equal(await slurmJobState('987654321'), 'gone')
    const jobId = await sbatch('--hold', '--wrap', 'sleep 5')
    const both = await querySlurmJobs([jobId, '987654321'])
    t.same(Object.fromEntries(both!), { [jobId]: { state: 'pending', uid: process.getuid!() }, 987654321: { state: 'gone', uid: null } })
  })

  t.test('the owner is the submitting user, by uid, also once the job ended', { skip: whyNotRoot() }, async (t) => {
    const { stdout } = await exec('runuser', ['-u', 'alice', '--', 'sbatch', '--parsable', '-o', '/dev/null', '--wrap', 'true'], { cwd: '/' })
    const jobId = stdout.trim()
    t.teardown(() => exec('scancel', [jobId]).then(() => undefined, () => undefined))
    const alice = Number((await exec('id', ['-u', 'alice'])).stdout.trim())
    t.equal(await waitFor(jobId, ['gone']), 'gone')
    t.same((await querySlurmJobs([jobId]))?.get(jobId), { state: 'gone', uid: alice })
  })

  t.test('controller unreachable: unknown, so nothing is revoked on an outage', async (t) => {
    // the same cluster config, but the controller port points where nothing listens
    const conf = await readFile(process.env.SLURM_CONF ?? '/etc/slurm/slurm.conf', 'utf8')
    const bad = join(dir, 'slurm.conf')
    await writeFile(bad, conf.replace(/^SlurmctldPort=.*$/m, '') + '\nSlurmctldPort=9\n')
    const jobId = await sbatch('--hold', '--wrap', 'sleep 5')
    t.equal(await slurmJobState(jobId), 'pending', 'the job exists')
    const env = { ...process.env, SLURM_CONF: bad }
    t.equal(await querySlurmJobs([jobId], { env, deadlineMs: 1500 }), null)
  })
})
