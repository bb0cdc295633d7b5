// CLUSTER.md "What the tests must show" 6, with real daemons: kill -9 of a node whose heads are alive. Node a (a host
// of its own) arms two runs of alice's: one whose head is a Nextflow on a's host (fake-nextflow.ts: history line
// still `-`, session lock held), one tied to a running Slurm job (SLURM_JOB_ID). a is killed; b adopts both and must
// not revoke them: it cannot read the head's pid or lock from its host, and hostDeadAfterSeconds (300 s) is far off.
// Each is revoked once, by b, when its end becomes visible from b: the history line turning OK on the shared
// filesystem, and the Slurm job ending (scancel).
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { chownSync, existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { startClusterDaemons } from '../helpers/cluster-daemons.js'
import { json } from '../helpers/cli.js'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import { ownHost } from '../helpers/netlab.js'
import { requireSlurm } from '../helpers/requires.js'
import { ensureUsers } from '../helpers/users.js'

requireSlurm(t)

const TTL = 5

t.test('6: kill -9 with live heads: adopted, not revoked; revoked once when the head ends', async t => {
  const cluster = await startClusterDaemons(t, { leaseTtlSeconds: TTL, cluster: { hostDeadAfterSeconds: 300 } })
  if (cluster === null) return
  const c = cluster
  const [alice] = ensureUsers(['alice'])
  await Promise.all(['a', 'b'].map(async n => await c.start(n, { wrap: ownHost(n) })))
  t.equal((await c.cli('a', ['secrets', 'add', 'TOKEN'], { user: 'alice', input: 'canary-adopt-live\n' })).code, 0)
  const launchDir = (name: string): string => {
    const d = join(c.work, name)
    mkdirSync(d)
    chownSync(d, alice!.uid, alice!.gid)
    return d
  }
  const arm = async (dir: string, env: Record<string, string> = {}): Promise<{ runId: string, sessionId: string, env: Record<string, string> }> => {
    const r = await c.cli('a', ['arm', '--all', '--dir', dir, '--format', 'json', '--ttl', '1h'], { user: 'alice', env })
    if (r.code !== 0) throw new Error(`arm exited ${r.code}: ${r.stderr}`)
    return json(r.stdout)
  }
  const show = async (node: string, runId: string): Promise<{ state: string, owner?: string | null, slurmJobId?: string | null, targets: Record<string, { state: string }> }> => {
    const r = await c.cli(node, ['runs', 'show', runId, '--json'], { user: 'alice' })
    if (r.code !== 0) throw new Error(`runs show exited ${r.code}: ${r.stderr}`)
    return json(r.stdout)
  }
  const until = async (what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
      await sleep(200)
    }
  }
  const revokes = (runId: string): Array<{ node: string }> => c.audit('run.revoke').filter(l => l.runId === runId)

  // A local head: Nextflow running on a's host, its history line `-`.
  const localDir = launchDir('local')
  const local = await arm(localDir)
  const nf = await startFakeNextflow({ launchDir: localDir, sessionId: local.env.NXF_UUID ?? local.sessionId, uid: alice!.uid, gid: alice!.gid })
  t.teardown(async () => { await nf.close() })
  await until('a sees the local head start', async () => (await show('a', local.runId)).state === 'running')

  // A Slurm head: a job of alice's that runs until cancelled.
  const slurmDir = launchDir('slurm')
  const job = execFileSync('runuser', ['-u', 'alice', '--', 'sbatch', '--parsable', `--chdir=${slurmDir}`, '--output=/dev/null', '--wrap', 'sleep 600'],
    { encoding: 'utf8', env: { PATH: process.env.PATH, LANG: 'C.UTF-8' } }).trim().split(';')[0]!
  t.teardown(() => { try { execFileSync('scancel', [job]) } catch {} })
  const bound = await arm(slurmDir, { SLURM_JOB_ID: job })
  t.equal((await show('a', bound.runId)).slurmJobId, job, 'the run is tied to the job')

  const killedAt = Date.now()
  t.equal(await c.node('a').daemon.stop('SIGKILL'), null, 'a is killed')
  await until('b adopts both runs', async () => (await show('b', local.runId)).owner === 'b' && (await show('b', bound.runId)).owner === 'b')
  t.comment(`adopted ${Date.now() - killedAt} ms after the kill (TTL ${TTL} s)`)
  // Several monitor passes of b: an adopter that probed a's pid or lock from its own host would read them as dead and
  // end the run here.
  await c.passes(['b'], 4)
  for (const id of [local.runId, bound.runId]) {
    const r = await show('b', id)
    t.not(['completed', 'failed', 'killed', 'expired'].includes(r.state), true, `${id} is still live on b (${r.state})`)
    t.equal(r.targets.hpc?.state, 'provisioned', 'its secrets are still placed')
    t.equal(revokes(id).length, 0, 'no run.revoke line anywhere')
  }
  t.ok(existsSync(local.env.NXF_SECRETS_FILE ?? ''), 'the local head\'s secrets file is still there')

  // The local head ends: the history line turns OK on the shared filesystem, which b reads.
  await nf.finish('OK')
  await until('b revokes the local run', async () => (await show('b', local.runId)).targets.hpc?.state === 'revoked')
  t.equal((await show('b', local.runId)).state, 'completed', 'ended as the history says')
  // The Slurm head ends: squeue answers from b's host too.
  execFileSync('scancel', [job])
  await until('b revokes the Slurm run', async () => (await show('b', bound.runId)).targets.hpc?.state === 'revoked')
  await c.passes(['b'])
  for (const id of [local.runId, bound.runId]) {
    const lines = revokes(id)
    t.equal(lines.length, 1, `${id}: one run.revoke line over all nodes`)
    t.equal(lines[0]?.node, 'b', 'by the adopter')
  }
  t.notOk(existsSync(local.env.NXF_SECRETS_FILE ?? ''), 'the secrets file is gone')
  t.notOk(existsSync(bound.env.NXF_SECRETS_FILE ?? ''), 'both')
})
