// Attacks through Slurm job ids on a system-mode daemon, by a real second user (bob) against alice, on a real Slurm:
// - bob names alice's real job (or a made-up id) to tie his runs to it: refused with NFS_ERR_FORBIDDEN;
// - bob keeps 300 runs tied to jobs: the liveness pass asks Slurm once for all of them (counted through a squeue
//   on the daemon's PATH that logs each call and hands it to the real one), and while squeue is stuck alice's 2 s
//   TTL still expires on time.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { dirname, join } from 'node:path'
import { ensureUsers } from '../helpers/users.js'
import * as needs from '../helpers/requires.js'
import { startTestDaemon, tempDir } from '../helpers/daemon.js'
import { errorCode, json, runCli, runNode } from '../helpers/cli.js'
import { waitFor } from '../helpers/wait.js'

const INTERVAL_MS = 500

function requireSlurm (): void {
  const r = spawnSync('sinfo', ['-h', '-o', '%T'], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error('Slurm is not running: run scripts/ci/start-slurm.sh (as root) first')
}

/** Held jobs of `user` (never scheduled), cancelled in teardown. */
function heldJobs (t: { teardown: (fn: () => void) => void }, user: string, n: number): string[] {
  const out = execFileSync('runuser', ['-u', user, '--', 'bash', '-c', `for i in $(seq ${n}); do sbatch --parsable --hold -o /dev/null --wrap 'sleep 1'; done`], {
    encoding: 'utf8', cwd: '/', env: { PATH: process.env.PATH, LANG: 'C.UTF-8' }
  })
  const ids = out.trim().split('\n').map(l => l.split(';')[0]!)
  t.teardown(() => { spawnSync('scancel', ids) })
  return ids
}

needs.requireRoot(t)
needs.requireSlurm(t)
requireSlurm()
const [alice, bob] = ensureUsers(['alice', 'bob'])
const dir = tempDir(t, 'nfs-slurm-attack-')
const keyFile = join(dir, 'master.key')
writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })

// The daemon's squeue: logs its argv (one line per call, at its start) and runs the real one, or first sleeps
// far past the daemon's deadline while `slow` exists.
const shimDir = join(dir, 'shim')
mkdirSync(shimDir)
const realSqueue = execFileSync('bash', ['-c', 'command -v squeue'], { encoding: 'utf8' }).trim()
const callLog = join(dir, 'squeue-calls')
const slowFlag = join(dir, 'slow')
writeFileSync(join(shimDir, 'squeue'), `#!/bin/bash\necho "$*" >> ${callLog}\n[ -e ${slowFlag} ] && sleep 600\nexec ${realSqueue} "$@"\n`, { mode: 0o755 })

// A small client run as a given user: the socket's peer credentials are who the daemon serves.
writeFileSync(join(dir, 'client.mjs'), `
// client.mjs SOCKET METHOD PATH BODY: one request, prints {status, body}.
// client.mjs SOCKET METHOD PATH '[BODY, ...]' PARALLEL: one request per body, prints the statuses.
import { request } from 'node:http'
const [socket, method, path, body, parallel] = process.argv.slice(2)
const one = (b) => new Promise((resolve, reject) => {
  const req = request({ socketPath: socket, method, path, headers: { 'content-type': 'application/json' } }, res => {
    let text = ''
    res.on('data', c => { text += c })
    res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text || 'null') }))
  })
  req.on('error', reject)
  req.end(b)
})
if (parallel === undefined) {
  console.log(JSON.stringify(await one(body)))
} else {
  const bodies = JSON.parse(body).map(b => JSON.stringify(b))
  const statuses = []
  await Promise.all(Array.from({ length: Number(parallel) }, async () => { while (bodies.length > 0) statuses.push((await one(bodies.shift())).status) }))
  console.log(JSON.stringify(statuses))
}
`, { mode: 0o644 })

const daemon = await startTestDaemon(t, {
  mode: 'system',
  dir,
  env: { PATH: `${shimDir}:${process.env.PATH}` },
  config: { keyFile, runs: { livenessIntervalMs: INTERVAL_MS }, limits: { liveRunsPerUser: 1000 } }
})
const launch: Record<string, string> = {}
for (const u of [alice!, bob!]) {
  launch[u.name] = join(dir, `${u.name}-launch`)
  mkdirSync(launch[u.name]!, { mode: 0o700 })
  chownSync(launch[u.name]!, u.uid, u.gid)
}

t.test('bob cannot tie a run to alice\'s job, nor to a made-up one', async t => {
  const [aliceJob] = heldJobs(t, 'alice', 1)
  const arm = (jobId: string): ReturnType<typeof runCli> => runCli(['arm', '--dir', launch.bob!], { user: 'bob', env: { NF_SECRETS_SOCKET: daemon.socket, SLURM_JOB_ID: jobId } })
  for (const [what, jobId] of [['alice\'s real job', aliceJob!], ['a made-up job id', '424242']] as const) {
    const r = await arm(jobId)
    t.equal(r.code, 4, `${what}: exit 4 (${r.stderr.trim()})`)
    t.equal(errorCode(r.stderr), 'NFS_ERR_FORBIDDEN', what)
  }
  t.same(json((await runCli(['runs', 'list', '--all', '--json'], { user: 'bob', env: { NF_SECRETS_SOCKET: daemon.socket } })).stdout), [], 'no run of bob was recorded')

  // The bind of nf-secrets sbatch is held to the same rule: bob's own armed run, alice's job.
  const own = await runCli(['arm', '--dir', launch.bob!, '--format', 'json'], { user: 'bob', env: { NF_SECRETS_SOCKET: daemon.socket } })
  t.equal(own.code, 0, own.stderr)
  const runId = json<{ runId: string }>(own.stdout).runId
  const bind = await runNode(join(dir, 'client.mjs'), [daemon.socket, 'POST', `/api/v1/runs/${runId}/slurm-job`, JSON.stringify({ jobId: aliceJob })], { user: 'bob' })
  t.match(json(bind.stdout), { status: 403, body: { code: 'NFS_ERR_FORBIDDEN' } }, 'bind to alice\'s job')

  // alice's own job is hers to name; her run ends when the job does.
  const mine = await runCli(['arm', '--dir', launch.alice!, '--format', 'json'], { user: 'alice', env: { NF_SECRETS_SOCKET: daemon.socket, SLURM_JOB_ID: aliceJob! } })
  t.equal(mine.code, 0, mine.stderr)
  const store = json<{ env: Record<string, string> }>(mine.stdout).env.NXF_SECRETS_FILE!
  t.ok(existsSync(store))
  execFileSync('scancel', [aliceJob!])
  await waitFor('alice\'s run to end with her job', () => !existsSync(dirname(store)), 20_000, 100)
})

t.test('300 runs tied to jobs cost one squeue per pass, and a stuck squeue does not delay alice\'s TTL', async t => {
  const jobs = heldJobs(t, 'bob', 30)
  const bodies = jobs.flatMap(jobId => Array.from({ length: 10 }, () => ({ mode: 'arm', launchDir: launch.bob, ttlSeconds: 604800, slurmJobId: jobId })))
  const armed = await runNode(join(dir, 'client.mjs'), [daemon.socket, 'POST', '/api/v1/runs', JSON.stringify(bodies), '4'], { user: 'bob', timeoutMs: 240_000 })
  t.same(json<number[]>(armed.stdout), Array(300).fill(201), 'bob armed 300 runs, 10 on each of his 30 jobs')

  // Passes go on: every squeue call the daemon makes now is a pass's, and names all 30 jobs.
  rmSync(callLog, { force: true })
  // A window of real time, kept on purpose: what is measured is how many squeue calls a real daemon makes per pass
  // interval (a rate), counted from the fake squeue's own log.
  const windowMs = 3000
  await new Promise(resolve => setTimeout(resolve, windowMs))
  const calls = readFileSync(callLog, 'utf8').trim().split('\n')
  t.ok(calls.length >= 2 && calls.length <= windowMs / INTERVAL_MS + 2, `one squeue per pass: ${calls.length} calls in ${windowMs} ms at a ${INTERVAL_MS} ms interval (300 before)`)
  for (const call of calls) {
    const asked = /-j (\S+)/.exec(call)?.[1]?.split(',') ?? []
    t.same(asked.sort(), [...jobs].sort(), 'each call asks about every job of every run')
  }

  // squeue gets stuck (a controller that does not answer): alice arms with a 2 s TTL.
  writeFileSync(slowFlag, '')
  t.teardown(() => rmSync(slowFlag, { force: true }))
  await waitFor('a stuck call', () => readFileSync(callLog, 'utf8').trim().split('\n').length > calls.length, 5000, 100)
  const stuckCalls = readFileSync(callLog, 'utf8').trim().split('\n').length
  const arm = await runCli(['arm', '--ttl', '2s', '--dir', launch.alice!, '--format', 'json'], { user: 'alice', env: { NF_SECRETS_SOCKET: daemon.socket } })
  t.equal(arm.code, 0, arm.stderr)
  const run = json<{ runId: string, env: Record<string, string> }>(arm.stdout)
  const store = run.env.NXF_SECRETS_FILE!
  t.ok(existsSync(store))
  const show = await runCli(['runs', 'show', run.runId, '--json'], { user: 'alice', env: { NF_SECRETS_SOCKET: daemon.socket } })
  const expiresAt = Date.parse(json<{ expiresAt: string }>(show.stdout).expiresAt)
  // Bound: the TTL, one pass, and 2 s for the revoke (the same bound as for any run when Slurm is well).
  const bound = expiresAt + INTERVAL_MS + 2000
  await waitFor('alice\'s run to expire', () => !existsSync(dirname(store)), Math.max(0, bound - Date.now()), 100)
  const after = json<{ state: string }>((await runCli(['runs', 'show', run.runId, '--json'], { user: 'alice', env: { NF_SECRETS_SOCKET: daemon.socket } })).stdout)
  t.equal(after.state, 'expired', 'alice\'s run expired on time while squeue was stuck')
  t.equal(readFileSync(callLog, 'utf8').trim().split('\n').length, stuckCalls, 'no second squeue while the stuck one is out')
  const bobs = json<Array<{ state: string, slurmJobId: string | null }>>((await runCli(['runs', 'list', '--json'], { user: 'bob', env: { NF_SECRETS_SOCKET: daemon.socket } })).stdout)
  t.equal(bobs.filter(r => r.state === 'armed' && r.slurmJobId !== null).length, 300, 'bob\'s runs keep their last known state')
})
