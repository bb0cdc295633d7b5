// The PTY host in-process on a real ledger and store with the memory target: the checks made as the caller before
// anything is provisioned (through setpriv, as alice), and a start that fails after provisioning, which must end
// the run `failed`, revoke it and answer NFS_ERR_LAUNCH_FAILED.
import t from 'tap'
import { spawn } from 'node:child_process'
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { PtyHost } from '../../daemon/pty/host.js'
import { SecretValue } from '../../daemon/secret-value.js'
import { findSetpriv, precheck } from '../../daemon/pty/precheck.js'
import { realProbes } from '../../daemon/runs/probes.js'
import { processStartTime } from '../../daemon/runs/liveness/process.js'
import { caller, runsFixture } from '../helpers/runs.js'
import { requireUsers } from '../helpers/requires.js'
import { codeOf } from '../helpers/code-of.js'

const [alice] = requireUsers(t, ['alice'])
const setpriv = findSetpriv()
const identity = { uid: alice!.uid, gid: alice!.gid, gids: [alice!.gid] }

t.test('checks as the caller: an enterable dir and a command on her PATH', async t => {
  t.ok(setpriv, 'setpriv is installed')
  const root = mkdtempSync(join(tmpdir(), 'nfs-pre-'))
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  chmodSync(root, 0o755)
  const mine = join(root, 'mine')
  mkdirSync(mine, { mode: 0o700 })
  chownSync(mine, alice!.uid, alice!.gid)
  const closed = join(root, 'closed')
  mkdirSync(closed, { mode: 0o700 })
  const base = { shell: '/bin/sh', setpriv, identity, path: '/usr/bin:/bin' }
  t.equal(await codeOf(precheck({ ...base, launchDir: mine, command: 'sh' })), undefined)
  t.equal(await codeOf(precheck({ ...base, launchDir: closed, command: 'sh' })), 'NFS_ERR_FORBIDDEN', "root's 0700 dir: alice cannot enter")
  t.equal(await codeOf(precheck({ ...base, launchDir: join(root, 'absent'), command: 'sh' })), 'NFS_ERR_INVALID_PATH')
  t.equal(await codeOf(precheck({ ...base, launchDir: 'relative', command: 'sh' })), 'NFS_ERR_INVALID_PATH')
  t.equal(await codeOf(precheck({ ...base, launchDir: mine, command: 'no-such-command-zz' })), 'NFS_ERR_LAUNCH_FAILED')
  t.equal(await codeOf(precheck({ ...base, setpriv: null, launchDir: closed, command: 'sh' })), undefined, 'as root (no identity change) the same dir is fine')
})

t.test('a spawn that fails after provisioning: the run ends failed, is revoked, and the request fails coded', async t => {
  const f = await runsFixture(t)
  const host = new PtyHost({
    runs: f.runs,
    config: f.config,
    logger: pino({ level: 'silent' }),
    probes: f.probes,
    daemonUid: process.getuid!(),
    clock: () => new Date(),
    spawn: () => { throw new Error('forkpty(3) failed.') }
  })
  t.teardown(() => host.close())
  const me = caller('root', { uid: process.getuid!(), gid: process.getgid!() })
  await f.store.createSecret('user:root', 'TOKEN_A', new SecretValue('launch-value'), 'root')
  const code = await codeOf(host.launch(me, { mode: 'launch', launchDir: f.launchDir, command: ['sh', '-c', 'true'], env: { PATH: '/usr/bin:/bin' } }))
  t.equal(code, 'NFS_ERR_LAUNCH_FAILED')
  const runs = f.ledger.all()
  t.equal(runs.length, 1, 'the run was provisioned first')
  t.match(runs[0], { mode: 'launch', state: 'failed', names: ['TOKEN_A'], targets: { memory: { state: 'revoked' } } })
  t.equal(f.memory.placed.get(runs[0]!.runId)?.size ?? 0, 0, 'nothing left in the target')
  t.ok(f.memory.calls.some(c => c.op === 'provision'), 'it had been provisioned')
  const userDir = join(f.config.stateDir, 'launch', 'root')
  t.same(readdirSync(userDir).filter(n => n.endsWith('.env')), [], 'the environment file is gone')

  const notFound = await codeOf(host.launch(me, { mode: 'launch', launchDir: f.launchDir, command: ['no-such-command-zz'] }))
  t.equal(notFound, 'NFS_ERR_LAUNCH_FAILED')
  t.equal(f.ledger.all().length, 1, 'a command that is not there fails before anything is provisioned')
})

t.test('an adopted run whose pid now names another process: stop signals nothing', async t => {
  // The command of an adopted run (not our child) went, and its pid now belongs to some other process, here a real
  // session leader started by the test. The run still records the old start time; the other process must live.
  const f = await runsFixture(t)
  const other = spawn('/bin/sleep', ['60'], { detached: true, stdio: 'ignore' })
  t.teardown(() => { try { process.kill(-other.pid!, 'SIGKILL') } catch {} })
  const me = caller('root', { uid: process.getuid!(), gid: process.getgid!() })
  const created = await f.runs.create(me, { mode: 'launch', launchDir: f.launchDir, command: ['sleep', '60'] })
  const pidStart = await processStartTime(other.pid!)
  t.ok(pidStart !== null)
  let run = f.ledger.get(created.runId)!
  await f.ledger.update(run.runId, run.version, r => ({ ...r, state: 'running', pid: other.pid!, pidStart }))
  const host = new PtyHost({ runs: f.runs, config: { ...f.config, launch: { ...f.config.launch, killGraceSeconds: 1 } }, logger: pino({ level: 'silent' }), probes: realProbes(), daemonUid: process.getuid!(), clock: () => new Date(), pollMs: 3_600_000 })
  t.teardown(() => host.close())
  f.runs.setHost(host)
  t.equal(await host.adopt(), 1, 'adopted while its pid is the recorded process')
  run = f.ledger.get(created.runId)!
  // The recorded process is gone, the pid reused: the start time no longer matches.
  await f.ledger.update(run.runId, run.version, r => ({ ...r, pidStart: pidStart! + 1 }))
  await host.stop(created.runId)
  t.equal(other.exitCode, null)
  t.equal(other.signalCode, null, 'the process now holding the pid got no signal')
  t.ok(host.session(created.runId) !== undefined)
})
