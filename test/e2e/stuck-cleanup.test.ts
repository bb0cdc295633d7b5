// Attack (security review 2, issue 13): a user freezes the daemon by stopping the cleanup `find` it runs as them.
// bob's expired run holds a subdir, so its revoke runs `find` as bob; bob SIGSTOPs every `find` of his in a loop.
// alice's 2 s arm must still expire and be revoked within its TTL plus the liveness interval (the bound of the wait
// below), and a daemon restarted while bob's cleanup is stuck must serve. Meanwhile alice has a live launched
// session, so the stopped `find` also shows whether a pty master reaches a cleanup child: it must hold fds 0-2 only.
import t from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js'
import { json, runCli } from '../helpers/cli.js'
import { eventually, run } from '../helpers/attach.js'
import { requireUsers } from '../helpers/requires.js'

t.setTimeout(300_000)

const [alice, bob] = requireUsers(t, ['alice', 'bob'])
const INTERVAL_MS = 500

function workDir (root: string, user: { name: string, uid: number, gid: number }): string {
  const dir = join(root, `${user.name}-work`)
  mkdirSync(dir, { mode: 0o700 })
  chownSync(dir, user.uid, user.gid)
  return dir
}

/** bob's processes named find that are stopped (state T), with their fd links. */
function stoppedFinds (): Array<{ pid: number, fds: Map<number, string> }> {
  const out: Array<{ pid: number, fds: Map<number, string> }> = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const status = readFileSync(`/proc/${name}/status`, 'utf8')
      if (!/^Name:\s+find$/m.test(status) || !/^State:\s+T/m.test(status)) continue
      if (!new RegExp(`^Uid:\\s+${bob!.uid}\\s`, 'm').test(status)) continue
      const fds = new Map<number, string>()
      for (const fd of readdirSync(`/proc/${name}/fd`)) fds.set(Number(fd), readlinkSync(`/proc/${name}/fd/${fd}`))
      out.push({ pid: Number(name), fds })
    } catch {}
  }
  return out
}

async function arm (daemon: TestDaemon, user: string, cwd: string, ttl: string): Promise<string> {
  const r = await runCli(['arm', '--ttl', ttl, '--format', 'json'], { user, env: { NF_SECRETS_SOCKET: daemon.socket }, cwd })
  if (r.code !== 0) throw new Error(r.stderr)
  return json<{ runId: string }>(r.stdout).runId
}

t.test("bob's stopped cleanup delays neither alice's expiry nor a restarted daemon", async t => {
  const began = Date.now()
  const dir = tempDir(t)
  const keyFile = join(dir, 'master.key')
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  const config = { keyFile, runs: { livenessIntervalMs: INTERVAL_MS } }
  const daemon = await startTestDaemon(t, { mode: 'system', dir, config })
  const env = { NF_SECRETS_SOCKET: daemon.socket }
  const aliceWork = workDir(dir, alice!)
  const bobWork = workDir(dir, bob!)

  const launched = await runCli(['launch', '--detach', '--', 'sh', '-c', 'read _'], { user: 'alice', env, cwd: aliceWork })
  t.equal(launched.code, 0, launched.stderr)

  // bob's stopper: every find of his, stopped as soon as it appears.
  const stopper = spawn('runuser', ['-u', 'bob', '--', 'sh', '-c', 'while :; do pkill -STOP -u bob -x find; sleep 0.02; done'], { stdio: 'ignore', detached: true })
  t.teardown(() => {
    try { process.kill(-stopper.pid!, 'SIGKILL') } catch {}
    try { execFileSync('pkill', ['-KILL', '-u', 'bob', '-x', 'find']) } catch {}
  })
  // A tree big enough that the cleanup find runs long enough to be caught, made beforehand and moved in (a rename).
  // Two of them: bob's two runs end together, and their removals (the early one beside the end's write included,
  // Revoker.startEarly) must still go one at a time, as in his revoke lane: never two of his finds at once.
  for (const heavy of ['heavy1', 'heavy2']) {
    execFileSync('runuser', ['-u', 'bob', '--', 'sh', '-c', `cd "${bobWork}" && mkdir ${heavy} && cd ${heavy} && for d in $(seq 1 10); do mkdir d$d; (cd d$d && seq -f f%g 1 1000 | xargs touch); done`])
  }
  const bobRun = await arm(daemon, 'bob', bobWork, '2s')
  const bobRun2 = await arm(daemon, 'bob', bobWork, '2s')
  execFileSync('runuser', ['-u', 'bob', '--', 'mv', join(bobWork, 'heavy1'), join(dir, 'runs', 'bob', bobRun, 'sub')])
  execFileSync('runuser', ['-u', 'bob', '--', 'mv', join(bobWork, 'heavy2'), join(dir, 'runs', 'bob', bobRun2, 'sub')])
  let mostFinds = 0
  const counting = setInterval(() => { mostFinds = Math.max(mostFinds, stoppedFinds().length) }, 50)
  t.teardown(() => { clearInterval(counting) })
  const stopped = await eventually(() => { const s = stoppedFinds(); return s.length > 0 ? s : undefined }, "bob's revoke to start a find he stops")
  for (const f of stopped) {
    t.same([...f.fds.keys()].filter(fd => fd > 2 && !/^\//.test(f.fds.get(fd)!)), [], 'the cleanup child holds no inherited pipe, socket or terminal')
    t.notOk([...f.fds.values()].some(l => /ptmx|\/dev\/pts\//.test(l)), 'no pty of alice in the cleanup child')
  }

  const aliceRun = await arm(daemon, 'alice', aliceWork, '2s')
  // Bound: the TTL plus two liveness intervals plus start-up slack; on the old code it stays armed for ever.
  const ended = await eventually(async () => {
    const v = await run(daemon, aliceRun)
    return v.targets.hpc?.state === 'revoked' ? v : undefined
  }, "alice's run to expire and be revoked", 2000 + 2 * INTERVAL_MS + 3000)
  t.equal(ended.state, 'expired')
  t.notOk(existsSync(join(dir, 'runs', 'alice', aliceRun)), "alice's store is gone")
  t.equal((await run(daemon, bobRun)).state, 'expired', "bob's run ended too; only its cleanup waits")
  t.equal((await run(daemon, bobRun2)).state, 'expired', 'and his second')
  clearInterval(counting)
  t.equal(mostFinds, 1, 'one cleanup of bob at a time, however many of his runs ended')

  // Restart (after a kill) while bob's cleanup is stuck: the new daemon must answer /health (startTestDaemon waits).
  t.comment(`until the restart: ${Date.now() - began} ms`)
  await daemon.stop('SIGKILL')
  const again = await startTestDaemon(t, { mode: 'system', dir, config, readyTimeoutMs: 30_000 })
  const health = await runCli(['whoami'], { user: 'alice', env: { NF_SECRETS_SOCKET: again.socket } })
  t.equal(health.code, 0, health.stderr)
  t.comment(`until the end: ${Date.now() - began} ms`)
})
