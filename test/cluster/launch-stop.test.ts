// A launched command whose run is ended on another node (cluster mode), with real daemons on a real 3-member etcd
// and alice as the real user who launches. Its owner (the launching node) stops the command first, then revokes, as
// a revoke on one node does: the command's secrets are still there while it handles its SIGTERM. When another node
// owns the run (it adopted it while the launching daemon was down), that owner revokes only once the launching node
// has marked the command gone on the ledger (runs/command-gone.ts). And alice cannot keep her secrets placed by
// freezing her own command: SIGKILL after the grace period, then the revoke.
// The SIGTERM cases are end-to-end: the command's trap waits 1 s before it looks for its secrets file, so a revoke
// running beside the stop is seen there; on a loaded machine the old code could still pass those (the ledger's
// order of the mark and the revoke is the assertion that cannot).
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs'
import type { RunRecord } from '../../daemon/types.js'
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
  const etcdOwner = (runId: string): string | null => {
    const r = spawnSync('etcdctl', ['--endpoints', c.etcd.endpoints.join(','), 'get', `${c.prefix}own/${runId}`, '--print-value-only'], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' }, timeout: 10_000 })
    return r.stdout.trim() === '' ? null : r.stdout.trim()
  }
  const revokes = (runId: string): string[] => c.audit('run.revoke').filter(l => l.runId === runId).map(l => String(l.node))
  /** the run as the ledger has it (root is an admin) */
  const record = async (runId: string): Promise<RunRecord> => (await c.call('b', 'GET', `/runs/${runId}`)).body as RunRecord
  // On SIGTERM the command waits a moment (a real one flushes its work), then looks for its secrets file. Revoked
  // beside the stop, as before, the file was gone by then.
  const TRAP = 'trap \'sleep 1; if test -e "$NXF_SECRETS_FILE"; then echo present; else echo gone; fi > on-term; exit 0\' TERM; while :; do sleep 0.1; done'

  await t.test('the command handles its SIGTERM while its secrets are still placed', async t => {
    const { runId, pid, work, secrets } = await launch(TRAP)
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
    t.equal((await record(runId)).commandExit?.signal, 'SIGKILL', 'the ledger has the command killed (SIGKILL, after its grace period)')
  })

  await t.test('adopted by b while a was down: b revokes once a has stopped the command', async t => {
    const { runId, pid, work, secrets } = await launch(TRAP)
    t.equal(await c.node('a').daemon.stop('SIGKILL'), null, 'a is killed')
    await waitFor('b to adopt the run', () => etcdOwner(runId) === 'b', 30_000, 200)
    await c.start('a')
    t.ok(alive(pid), 'the command outlived its daemon and runs on (adopting is not revoking)')
    const r = await c.cli('b', ['runs', 'revoke', runId], { user: 'alice' })
    t.equal(r.code, 0, r.stderr)
    await waitFor('the command to end', () => !alive(pid), 30_000, 100).catch(() => {})
    t.notOk(alive(pid), 'the command is gone (stopped by a)')
    const seen = join(work, 'on-term')
    await waitFor('its answer', () => existsSync(seen), 10_000, 50).catch(() => {})
    t.equal(existsSync(seen) ? readFileSync(seen, 'utf8').trim() : 'no answer', 'present', 'the secrets were still there while the command handled its SIGTERM')
    await waitFor('the secrets file to go', () => !existsSync(secrets), 30_000, 100).catch(() => {})
    t.notOk(existsSync(secrets), 'then they are gone')
    t.same(revokes(runId), ['b'], 'revoked once, by its owner b')
    const run = await record(runId)
    t.ok(run.commandExit !== undefined, 'a marked the command gone on the ledger')
    const revokedAt = Object.values(run.targets).map(x => Date.parse(x?.revokedAt ?? ''))
    t.ok(revokedAt.length > 0 && revokedAt.every(at => at >= Date.parse(run.commandExit?.at ?? '')), 'before b revoked any target')
  })
})
