// A launched command whose run is ended on another node (cluster mode), with real daemons on a real 3-member etcd
// and alice as the real user who launches. Its owner (the launching node) stops the command first, then revokes, as
// a revoke on one node does: the command's secrets are still there while it handles its SIGTERM. And alice cannot
// keep her secrets placed by freezing her own command: SIGKILL after the grace period, then the revoke.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { alive } from '../helpers/attach.js'
import { startClusterDaemons } from '../helpers/cluster-daemons.js'
import { requireEtcd, requireUsers } from '../helpers/requires.js'
import { waitFor } from '../helpers/wait.js'

requireEtcd(t)
const [alice] = requireUsers(t, ['alice'])

const TTL = 5
const GRACE = 2

t.test('a launched command ended on another node: stopped first, then revoked', async t => {
  const c = await startClusterDaemons(t, { leaseTtlSeconds: TTL, config: { launch: { outputRetentionDays: 7, replayBytes: 65536, killGraceSeconds: GRACE } } })
  if (c === null) return
  await Promise.all(['a', 'b'].map(async n => await c.start(n)))
  t.equal((await c.cli('a', ['secrets', 'add', 'TOKEN'], { user: 'alice', input: 'canary-launch-stop\n' })).code, 0)
  let dirs = 0
  /** alice launches `script` on node a (detached); its pid and secrets file as the script wrote them */
  const launch = async (script: string): Promise<{ runId: string, pid: number, work: string, secrets: string }> => {
    const work = join(c.work, `ls${dirs++}`)
    mkdirSync(work, { mode: 0o700 })
    chownSync(work, alice!.uid, alice!.gid)
    const r = await c.cli('a', ['launch', '--all', '--detach', '--', 'sh', '-c', `echo "$NXF_SECRETS_FILE" > secrets.path; echo $$ > child.pid; ${script}`], { user: 'alice', cwd: work })
    if (r.code !== 0) throw new Error(`launch exited ${r.code}: ${r.stderr}`)
    const pidFile = join(work, 'child.pid')
    await waitFor('the command\'s pid', () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'), 20_000, 50)
    const secrets = readFileSync(join(work, 'secrets.path'), 'utf8').trim()
    return { runId: r.stdout.trim(), pid: Number(readFileSync(pidFile, 'utf8')), work, secrets }
  }
  const revokes = (runId: string): string[] => c.audit('run.revoke').filter(l => l.runId === runId).map(l => String(l.node))

  await t.test('the command handles its SIGTERM while its secrets are still placed', async t => {
    // On SIGTERM the command waits a moment (a real one flushes its work), then looks for its secrets file. Revoked
    // beside the stop, as before, the file was gone by then.
    const { runId, pid, work, secrets } = await launch('trap \'sleep 1; if test -e "$NXF_SECRETS_FILE"; then echo present; else echo gone; fi > on-term; exit 0\' TERM; while :; do sleep 0.1; done')
    t.ok(existsSync(secrets), 'the secrets file is placed')
    const r = await c.cli('b', ['runs', 'revoke', runId], { user: 'alice' })
    t.equal(r.code, 0, r.stderr)
    await waitFor('the command to end', () => !alive(pid), 30_000, 100).catch(() => {})
    t.notOk(alive(pid), 'the command is gone')
    const seen = join(work, 'on-term')
    await waitFor('its answer', () => existsSync(seen), 10_000, 50).catch(() => {})
    t.equal(existsSync(seen) ? readFileSync(seen, 'utf8').trim() : 'no answer', 'present', 'the secrets were still there while the command handled its SIGTERM')
    await waitFor('the secrets file to go', () => !existsSync(secrets), 30_000, 100).catch(() => {})
    t.notOk(existsSync(secrets), 'then they are gone')
    t.same(revokes(runId), ['a'], 'revoked once, by its owner a')
  })

  await t.test('attack: alice freezes her command (SIGSTOP) to keep its secrets placed', async t => {
    const { runId, pid, secrets } = await launch('while :; do sleep 0.1; done')
    // alice's own signal, as alice: the kernel lets her stop her own process.
    const stopped = spawnSync('setpriv', [`--reuid=${alice!.uid}`, `--regid=${alice!.gid}`, '--clear-groups', 'kill', '-STOP', String(pid)])
    t.equal(stopped.status, 0, 'alice stopped her command')
    const state = (): string => /^\d+ \(.*\) (\S) /.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1] ?? '?'
    await waitFor('the command to be stopped', () => state() === 'T', 10_000, 20).catch(() => {})
    t.equal(state(), 'T', 'it is stopped')
    const r = await c.cli('b', ['runs', 'revoke', runId], { user: 'alice' })
    t.equal(r.code, 0, r.stderr)
    await waitFor('the command to be killed', () => !alive(pid), 30_000, 100).catch(() => {})
    t.notOk(alive(pid), 'the frozen command is killed (SIGKILL after the grace period)')
    await waitFor('the secrets file to go', () => !existsSync(secrets), 30_000, 100).catch(() => {})
    t.notOk(existsSync(secrets), 'its secrets are gone')
    t.same(revokes(runId), ['a'], 'revoked once, by its owner a')
    const logs = c.node('a').daemon.logs().filter(l => l.runId === runId).map(l => String(l.msg))
    t.ok(logs.includes('the command outlived its grace period; killing it'), 'killed by the daemon, after its grace period')
  })
})
