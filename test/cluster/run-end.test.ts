// What a run's end leaves behind in cluster mode, with real daemons on one real 3-member etcd: its owner key goes
// once it needs no owner (CLUSTER.md "Keys": own/<runId> is for runs that need one; without the release etcd kept
// one key per run ever armed, for as long as its node lived). Counted from outside: etcdctl reads the keys, the
// audit lines of every node count the revokes. And a launched command stops when its run is revoked on another node.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { alive, PATH } from '../helpers/attach.js'
import { startClusterDaemons, type DaemonCluster } from '../helpers/cluster-daemons.js'
import { json } from '../helpers/cli.js'
import { ensureUsers } from '../helpers/users.js'
import { waitFor } from '../helpers/wait.js'

const TTL = 5

/** The keys under the cluster's prefix that start with `sub` (etcdctl, outside the daemons). */
function etcdKeys (c: DaemonCluster, sub: string): string[] {
  const r = spawnSync('etcdctl', ['--endpoints', c.etcd.endpoints.join(','), 'get', '--prefix', `${c.prefix}${sub}`, '--keys-only'], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' }, timeout: 10_000 })
  if (r.status !== 0) throw new Error(`etcdctl failed: ${r.stderr}`)
  return r.stdout.split('\n').filter(l => l !== '').map(l => l.slice(c.prefix.length))
}

t.test('a run that needs no owner any more gives its owner key up', async t => {
  const c = await startClusterDaemons(t, { leaseTtlSeconds: TTL })
  if (c === null) return
  const [alice] = ensureUsers(['alice'])
  await Promise.all(['a', 'b'].map(async n => await c.start(n)))
  let dirs = 0
  const arm = async (node: string, extra: string[] = []): Promise<{ runId: string, env: Record<string, string> }> => {
    const d = join(c.work, `p${dirs++}`)
    mkdirSync(d)
    chownSync(d, alice!.uid, alice!.gid)
    const r = await c.cli(node, ['arm', '--all', '--dir', d, '--format', 'json', ...extra], { user: 'alice' })
    if (r.code !== 0) throw new Error(`arm on ${node} exited ${r.code}: ${r.stderr}`)
    return json(r.stdout)
  }

  const live = await arm('a', ['--ttl', '1h'])
  const onOwner = await arm('a', ['--ttl', '1h'])
  const elsewhere = await arm('a', ['--ttl', '1h'])
  const expiring = await arm('b', ['--ttl', '2s'])
  await waitFor('the four owner keys', () => etcdKeys(c, 'own/').length === 4, 10_000, 100)

  t.equal((await c.cli('a', ['runs', 'revoke', onOwner.runId], { user: 'alice' })).code, 0, 'revoked on its owner')
  t.equal((await c.cli('b', ['runs', 'revoke', elsewhere.runId], { user: 'alice' })).code, 0, 'revoked on another node')
  const released = [onOwner.runId, elsewhere.runId, expiring.runId]
  await waitFor('the ended runs to give their owner keys up', () => {
    const own = etcdKeys(c, 'own/')
    return released.every(id => !own.includes(`own/${id}`))
  }, 30_000, 200).catch(() => {})
  const own = etcdKeys(c, 'own/')
  t.comment(`owner keys left after 3 of 4 runs ended: ${own.length}`)
  t.same(own, [`own/${live.runId}`], 'only the live run keeps its owner key')
  t.ok(existsSync(live.env.NXF_SECRETS_FILE!), 'and its secrets')
  const rows = etcdKeys(c, 'runs/')
  for (const id of released) t.ok(rows.includes(`runs/${id}`), `the ledger row of ${id} stays (until retention prunes it)`)

  // Released is not orphaned: nothing adopts a revoked run, nothing revokes it again, on any node (two passes each).
  await c.passes(['a', 'b'])
  for (const id of released) {
    t.equal(c.audit('run.revoke').filter(l => l.runId === id).length, 1, `${id}: one run.revoke line over all nodes`)
    const shown = await c.cli('b', ['runs', 'show', id, '--json'], { user: 'alice' })
    t.equal(shown.code, 0, shown.stderr)
    const r = json<{ owner: string | null, targets: Record<string, { state: string }> }>(shown.stdout)
    t.equal(r.owner, null, `${id}: no owner (it needs none)`)
    t.ok(Object.values(r.targets).every(x => x.state === 'revoked'), 'revoked')
  }
  t.same(etcdKeys(c, 'own/'), [`own/${live.runId}`], 'still no owner key for them')
  t.equal((await c.cli('b', ['runs', 'revoke', live.runId], { user: 'alice' })).code, 0)
  await waitFor('the last owner key to go', () => etcdKeys(c, 'own/').length === 0, 30_000, 200).catch(() => {})
  t.same(etcdKeys(c, 'own/'), [], 'no owner key left once every run is over')
})

// A launched command runs on the host of the node that launched it; its run may be ended elsewhere: revoked on another
// node, or revoked by the node that adopted it while the launching daemon was down. The command must stop then too
// (the launching node sees the end on the ledger's change feed), or it goes on after its secrets are gone.
t.test('a launched command stops when its run is revoked on another node', async t => {
  const c = await startClusterDaemons(t, { leaseTtlSeconds: TTL })
  if (c === null) return
  await Promise.all(['a', 'b'].map(async n => await c.start(n)))
  let dirs = 0
  const launch = async (node: string): Promise<{ runId: string, pid: number }> => {
    const d = join(c.work, `l${dirs++}`)
    mkdirSync(d)
    const r = await c.call(node, 'POST', '/runs', { mode: 'launch', launchDir: d, command: ['sleep', '600'], env: { PATH }, cols: 80, rows: 24 })
    if (r.status !== 201) throw new Error(`launch on ${node}: ${r.text}`)
    const runId = String((r.body as { runId: string }).runId)
    let pid = 0
    await waitFor('the command\'s pid in the ledger', async () => {
      pid = Number(((await c.call(node, 'GET', `/runs/${runId}`)).body as { pid: number | null }).pid ?? 0)
      return pid > 0
    }, 10_000, 100)
    return { runId, pid }
  }
  const revokeOn = async (node: string, runId: string): Promise<{ state: string, targets: Record<string, { state: string }> }> => {
    const r = await c.call(node, 'DELETE', `/runs/${runId}`)
    if (r.status !== 200) throw new Error(`revoke on ${node}: ${r.text}`)
    return r.body as { state: string, targets: Record<string, { state: string }> }
  }

  await t.test('launched on a, revoked on b', async t => {
    const { runId, pid } = await launch('a')
    t.ok(alive(pid), 'the command runs')
    const r = await revokeOn('b', runId)
    t.equal(r.state, 'killed')
    // Answered once the owner has revoked, even when the owner has given its key up already (it did, and b answered
    // with the record it had read before: 'revoking', in 2 of 5 runs here).
    t.same(Object.values(r.targets).map(x => x.state), ['revoked'], 'b answers with the owner\'s revoke')
    await waitFor('the command to stop', () => !alive(pid), 20_000, 100).catch(() => {})
    t.notOk(alive(pid), 'the command on a is stopped')
    // a writes its audit line after the 'revoked' record that b answered with: wait for the line, then count.
    const lines = (): string[] => c.audit('run.revoke').filter(l => l.runId === runId).map(l => l.node)
    await waitFor('a\'s run.revoke line', () => lines().length > 0, 20_000, 100).catch(() => {})
    t.same(lines(), ['a'], 'revoked once, by a')
  })

  await t.test('launched on a, adopted by b while a was down, revoked on b after a came back', async t => {
    const { runId, pid } = await launch('a')
    t.equal(await c.node('a').daemon.stop('SIGKILL'), null, 'a is killed')
    t.ok(alive(pid), 'the command outlives its daemon')
    await waitFor('b to adopt the run', () => etcdOwner(c, runId) === 'b', 30_000, 200)
    await c.start('a')
    t.ok(alive(pid), 'still running after a is back (a run is not revoked for being adopted)')
    const r = await revokeOn('b', runId)
    t.equal(r.state, 'killed')
    await waitFor('the command to stop', () => !alive(pid), 20_000, 100).catch(() => {})
    t.notOk(alive(pid), 'the command on a\'s host is stopped by a')
    const lines = (): string[] => c.audit('run.revoke').filter(l => l.runId === runId).map(l => l.node)
    await waitFor('b\'s run.revoke line', () => lines().length > 0, 20_000, 100).catch(() => {})
    t.same(lines(), ['b'], 'revoked once, by its owner b')
  })
})

function etcdOwner (c: DaemonCluster, runId: string): string | null {
  const r = spawnSync('etcdctl', ['--endpoints', c.etcd.endpoints.join(','), 'get', `${c.prefix}own/${runId}`, '--print-value-only'], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' }, timeout: 10_000 })
  const v = r.stdout.trim()
  return v === '' ? null : v
}
