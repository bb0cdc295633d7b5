// Launched runs in system mode (the daemon as root) for a real user: the command runs as alice with her uid, gid and
// every supplementary group, read from /proc/PID/status; her output log is hers and 0600; bob (and root, an admin)
// cannot attach, bob cannot revoke; alice's revoke stops the command.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chownSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { startTestDaemon, tempDir } from '../helpers/daemon.js'
import { runCli } from '../helpers/cli.js'
import { alive, attachRun, eventually, run } from '../helpers/attach.js'
import { requireUsers } from '../helpers/requires.js'

t.setTimeout(300_000)

const [alice] = requireUsers(t, ['alice', 'bob'])

function statusField (pid: number, field: string): string[] {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find(l => l.startsWith(`${field}:`)) ?? ''
  return line.slice(field.length + 1).trim().split(/\s+/).filter(Boolean)
}

t.test('as alice: her identity, her log; bob cannot attach or revoke; her revoke stops it', async t => {
  const dir = tempDir(t)
  const keyFile = join(dir, 'master.key')
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  const daemon = await startTestDaemon(t, { mode: 'system', dir, config: { keyFile, launch: { killGraceSeconds: 2 } } })
  const work = join(dir, 'alice-work')
  mkdirSync(work, { mode: 0o700 })
  chownSync(work, alice!.uid, alice!.gid)
  const env = { NF_SECRETS_SOCKET: daemon.socket }
  const launched = await runCli(['launch', '--detach', '--', 'sh', '-c', 'echo $$ > child.pid; echo ready; read _'], { user: 'alice', env, cwd: work })
  t.equal(launched.code, 0, launched.stderr)
  const runId = launched.stdout.trim()
  const pidFile = join(work, 'child.pid')
  await eventually(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n') ? true : undefined, 'the child pid')
  const pid = Number(readFileSync(pidFile, 'utf8'))
  const uid = String(alice!.uid)
  const gid = String(alice!.gid)
  t.same(statusField(pid, 'Uid'), [uid, uid, uid, uid], 'real, effective, saved and fs uid are alice')
  t.same(statusField(pid, 'Gid'), [gid, gid, gid, gid])
  const groups = execFileSync('id', ['-G', 'alice'], { encoding: 'utf8' }).trim().split(/\s+/).sort()
  t.same(statusField(pid, 'Groups').sort(), groups, 'every supplementary group of alice, genomics included')
  t.ok(groups.length > 1, 'alice has a supplementary group to check')
  t.equal(statusField(pid, 'CapEff')[0], '0000000000000000', 'no capabilities')
  t.equal(statSync(pidFile).uid, alice!.uid, 'files it makes are hers')

  const log = join(daemon.stateDir, 'launch', 'alice', `${runId}.log`)
  const st = statSync(log)
  t.equal(st.uid, alice!.uid, 'the output log is owned by alice')
  t.equal(st.mode & 0o777, 0o600)

  const bobAttach = await runCli(['attach', runId], { user: 'bob', env })
  t.equal(bobAttach.code, 3)
  t.match(bobAttach.stderr, /\(NFS_ERR_RUN_NOT_FOUND\)/)
  const bobRevoke = await runCli(['runs', 'revoke', runId], { user: 'bob', env })
  t.equal(bobRevoke.code, 3)
  t.match(bobRevoke.stderr, /\(NFS_ERR_RUN_NOT_FOUND\)/)
  const rootAttach = await attachRun(t, daemon.socket, runId).catch((err: { code?: string }) => err)
  t.equal((rootAttach as { code?: string }).code, 'NFS_ERR_RUN_NOT_FOUND', 'not even root: attaching means typing as alice')
  t.ok(alive(pid), 'still running')
  t.equal((await run(daemon, runId)).state, 'running')

  const revoke = await runCli(['runs', 'revoke', runId, '--json'], { user: 'alice', env })
  t.equal(revoke.code, 0, revoke.stderr)
  t.notOk(alive(pid), 'her revoke stopped the command')
  const view = await run(daemon, runId)
  t.match(view, { state: 'killed', targets: { hpc: { state: 'revoked' } } })
  t.notOk(existsSync(join(daemon.dir, 'runs', 'alice', runId)), 'the run dir is gone')
})
