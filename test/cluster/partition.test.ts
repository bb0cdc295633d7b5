// CLUSTER.md "What the tests must show" 9, with real daemons in network namespaces of the test's own (netlab.ts):
// etcd in a services namespace, nodes a, b and c each in a namespace of its own under its own host name, one shared
// runs root (the filesystem is not partitioned, as on a site with a shared FS). a arms runs whose heads are dead,
// then its link goes down. Its lease expires, b and c take its runs over and, after hostDeadAfterSeconds, revoke
// them once. a fences itself and revokes nothing; once healed, it sees them ended by the others and its revoke is a
// no-op (an owner write of a would be refused: own/<id> is no longer a) and still nothing is done twice, counted from outside: the run.revoke lines of all nodes, the dirs.
import t from 'tap'
import { chownSync, existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { startClusterDaemons } from '../helpers/cluster-daemons.js'
import { errorCode, json } from '../helpers/cli.js'
import { startNetLab, whyNoNetns } from '../helpers/netlab.js'
import { requireEtcd, skipFile } from '../helpers/requires.js'
import { ensureUsers } from '../helpers/users.js'
import { waitFor } from '../helpers/wait.js'

requireEtcd(t)
const why = whyNoNetns()
if (why !== false) skipFile(t, why)

const TTL = 5
const HOST_DEAD = 10

t.test('9: a partitioned node\'s dead-head runs are taken over; after the heal it does nothing twice', async t => {
  const lab = startNetLab(t, ['a', 'b', 'c'])
  const cluster = await startClusterDaemons(t, { leaseTtlSeconds: TTL, cluster: { hostDeadAfterSeconds: HOST_DEAD }, lab })
  if (cluster === null) return
  const c = cluster
  const [alice] = ensureUsers(['alice'])
  await Promise.all(['a', 'b', 'c'].map(async n => await c.start(n)))
  t.equal((await c.cli('a', ['secrets', 'add', 'TOKEN'], { user: 'alice', input: 'canary-partition\n' })).code, 0)
  let dirs = 0
  const arm = async (node: string): Promise<{ runId: string, env: Record<string, string> }> => {
    const d = join(c.work, `p${dirs++}`)
    mkdirSync(d)
    chownSync(d, alice!.uid, alice!.gid)
    const r = await c.cli(node, ['arm', '--all', '--dir', d, '--format', 'json', '--ttl', '1h'], { user: 'alice' })
    if (r.code !== 0) throw new Error(`arm on ${node} exited ${r.code}: ${r.stderr}`)
    return json(r.stdout)
  }
  const show = async (node: string, runId: string): Promise<{ state: string, owner?: string | null, targets: Record<string, { state: string }> } | null> => {
    const r = await c.cli(node, ['runs', 'show', runId, '--json'], { user: 'alice' })
    return r.code === 0 ? json(r.stdout) : null
  }
  const runs = [await arm('a'), await arm('a')]
  const ids = runs.map(r => r.runId)

  const cutAt = Date.now()
  lab.cut('a')
  const taken = new Map<string, number>()
  while (taken.size < ids.length && Date.now() - cutAt < 120_000) {
    for (const id of ids) {
      if (taken.has(id)) continue
      const r = await show('b', id)
      if (r !== null && Object.values(r.targets).every(x => x.state === 'revoked')) taken.set(id, Date.now() - cutAt)
    }
    await sleep(200)
  }
  t.comment(`a cut off: its ${ids.length} runs revoked by the others ${Math.max(...taken.values())} ms later (TTL ${TTL} + hostDeadAfter ${HOST_DEAD} s)`)
  t.equal(taken.size, ids.length, 'the others revoked every run of a')
  for (const id of ids) t.equal((await show('c', id))?.state, 'killed', `${id} ended as killed`)
  t.equal(c.audit('run.revoke').filter(l => l.node === 'a').length, 0, 'a revoked nothing while cut off (fenced)')

  // Heal: a is back on the network, its lease long gone. Its owner writes of those runs must be refused.
  lab.heal('a')
  // a's view catches up once its watch reconnects; the client's reconnect backoff after a long cut can take seconds
  // (2 s was not enough in a clean CI run). Until then a answers from its stale view, and refuses to act as owner.
  const healedAt = Date.now()
  const caughtUp = async (): Promise<boolean> => {
    for (const id of ids) if ((await show('a', id))?.state !== 'killed') return false
    return true
  }
  await waitFor('a\'s view after the heal', caughtUp, 60_000, 250).catch(() => {})
  t.comment(`a's view caught up ${Date.now() - healedAt} ms after the heal`)
  for (const id of ids) {
    // a's own view after the heal: the run ended by the others, not a's any more; its revoke changes nothing.
    const seen = await show('a', id)
    t.equal(seen?.state, 'killed', `a sees ${id} ended`)
    t.not(seen?.owner, 'a', 'and owned by another node, or by none')
    const r = await c.cli('a', ['runs', 'revoke', id], { user: 'alice' })
    t.equal(r.code, 0, `a's revoke of the ended run is a no-op (${errorCode(r.stderr) ?? 'ok'})`)
  }
  // A second revoke would come from a pass over the ledger (a's, healed, above all): every node ends two.
  await c.passes(['a', 'b', 'c'])
  const lines = c.audit('run.revoke').filter(l => ids.includes(String(l.runId)))
  const perRun = new Map<string, number>()
  for (const l of lines) perRun.set(String(l.runId), (perRun.get(String(l.runId)) ?? 0) + 1)
  const dup = [...perRun.values()].filter(n => n > 1).length
  const left = c.runDirs().filter(d => ids.some(id => d.endsWith(id))).length
  t.comment(`after the heal: duplicate run.revoke lines ${dup}, run dirs left ${left}, lines by a ${lines.filter(l => l.node === 'a').length}`)
  t.equal(dup, 0, 'nothing revoked twice')
  t.equal(perRun.size, ids.length, 'each run revoked once')
  t.ok(lines.every(l => l.node !== 'a'), 'never by a')
  t.equal(left, 0, 'no run dir left')
  for (const r of runs) t.notOk(existsSync(r.env.NXF_SECRETS_FILE ?? ''), 'secrets file gone')
})
