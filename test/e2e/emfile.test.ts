// Attack (security review 6, issue 13): out of fds, the daemon crashed. bob-style idle connections filled its fd
// table; the monitor's revoke then spawned a cleanup `find`, the spawn failed with EMFILE, and the old runner touched
// the child's stdio (undefined after EMFILE) before listening for 'error': an unhandled error event killed the process.
// Here the daemon's fd limit is lowered (prlimit) and connections fill it while alice's expired run needs a cleanup
// child. The daemon must stay up, and once the connections are gone answer again and finish the revoke.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chownSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs'
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { startTestDaemon, tempDir } from '../helpers/daemon.js'
import { json, runCli } from '../helpers/cli.js'
import { eventually } from '../helpers/attach.js'
import { ensureUsers } from '../helpers/users.js'
import { ledgerOnDisk } from '../helpers/ledger-file.js'

t.setTimeout(300_000)

const [alice] = ensureUsers(['alice'])

interface LedgerRun { runId: string, state: string, targets: { hpc?: { state: string, lastError: { code: string } | null } } }

t.test('out of fds while a revoke needs a child: the daemon stays up, then answers and finishes the revoke', async t => {
  const dir = tempDir(t)
  const keyFile = join(dir, 'master.key')
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  const config = { keyFile, runs: { livenessIntervalMs: 300, revokeRetryInitialMs: 200, revokeRetryMaxMs: 1000 } }
  const daemon = await startTestDaemon(t, { mode: 'system', dir, config })
  const env = { NF_SECRETS_SOCKET: daemon.socket }
  const work = join(dir, 'alice-work')
  mkdirSync(work, { mode: 0o700 })
  chownSync(work, alice!.uid, alice!.gid)
  const armed = await runCli(['arm', '--ttl', '3s', '--format', 'json'], { user: 'alice', env, cwd: work })
  t.equal(armed.code, 0, armed.stderr)
  const { runId } = json<{ runId: string }>(armed.stdout)
  // A subdir makes the revoke's cleanup a child (find as alice).
  execFileSync('runuser', ['-u', 'alice', '--', 'mkdir', join(dir, 'runs', 'alice', runId, 'sub')])

  // The daemon's fd table: what it holds now plus a few, filled by connections it accepts and keeps.
  const pid = daemon.process.pid!
  const held = readdirSync(`/proc/${pid}/fd`).length
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${held + 8}:${held + 8}`])
  const sockets: Socket[] = []
  t.teardown(() => { for (const s of sockets) s.destroy() })
  for (let i = 0; i < 40; i++) {
    const s = connect(daemon.socket)
    s.on('error', () => {})
    sockets.push(s)
  }
  await eventually(() => readdirSync(`/proc/${pid}/fd`).length >= held + 8 ? true : undefined, "the daemon's fd table to be full")

  // The TTL passes while the table is full: the pass ends the run and its cleanup child cannot be spawned.
  const ledgerRun = (): LedgerRun | undefined => (ledgerOnDisk(daemon.stateDir) as unknown as { runs: LedgerRun[] }).runs.find(r => r.runId === runId)
  const failed = await eventually(() => {
    if (daemon.process.exitCode !== null || daemon.process.signalCode !== null) throw new Error(`the daemon died:\n${daemon.log().slice(-2000)}`)
    const r = ledgerRun()
    return r?.state === 'expired' && r.targets.hpc?.state === 'revoke_failed' ? r : undefined
  }, 'the revoke to fail for want of fds')
  t.equal(failed.targets.hpc?.lastError?.code, 'NFS_ERR_REVOKE_FAILED')
  const spawnFailures = daemon.logs().filter(l => ['EMFILE', 'ENFILE'].includes(String((l.err as { code?: unknown } | undefined)?.code)))
  t.ok(spawnFailures.length > 0, 'the cleanup spawn failed for want of fds (err.code in the log)')
  t.equal(daemon.process.exitCode, null, 'the daemon is alive')
  t.equal(daemon.process.signalCode, null)

  for (const s of sockets.splice(0)) s.destroy()
  const who = await eventually(async () => {
    const r = await runCli(['whoami'], { user: 'alice', env })
    return r.code === 0 ? r : undefined
  }, 'the daemon to answer again')
  t.equal(who.code, 0)
  await eventually(() => ledgerRun()?.targets.hpc?.state === 'revoked' ? true : undefined, 'the retried revoke')
  t.notOk(existsSync(join(dir, 'runs', 'alice', runId)), "alice's run dir is gone")
  t.equal(daemon.process.exitCode, null, 'still alive')
})
