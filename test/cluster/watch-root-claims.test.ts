// The claims behind one poller per shared watch root (cluster/watch-roots.ts), on a real 3-member etcd with two
// registries as two nodes would hold them: real leases, a membership whose fencing the test sets by hand. What the
// daemons' test (watch-roots.test.ts) cannot show cheaply: a fenced node stops polling while its key still stands
// (and nobody else claims it then), a node that cannot see the root's path never claims it, and a takeover counts the
// starts written since the dead poller stopped as new, and a poller that cannot see the path keeps it for releaseAfterMs
// on its own clock (the test moves it) and no longer. Absences are checked after the node has run a look or claim pass.
import t from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EtcdWatchRoots } from '../../daemon/cluster/watch-roots.js'
import type { RootRefusal } from '../../daemon/store/watch-roots.js'
import { connectEtcd } from '../../daemon/store/etcd/etcd-client.js'
import { startEtcdCluster } from '../helpers/etcd-cluster.js'
import { newPrefix } from '../helpers/ownership-nodes.js'
import { waitFor } from '../helpers/wait.js'
import { silentLogger } from '../store/helpers.js'

const root = mkdtempSync(join(tmpdir(), 'nfs-shared-root-'))
const other = mkdtempSync(join(tmpdir(), 'nfs-shared-root-'))
t.teardown(() => { for (const d of [root, other]) rmSync(d, { recursive: true, force: true }) })

t.test('one poller per shared root: fencing, a path not mounted, takeover', async t => {
  const cluster = await startEtcdCluster(t)
  if (cluster === null) return
  const prefix = newPrefix()
  const node = async (name: string, canSee: (r: string) => boolean): Promise<{ roots: EtcdWatchRoots, m: { node: string, leaseId: string, unfenced: boolean }, changes: () => number, asked: (r: string) => number, die: () => Promise<void> }> => {
    const conn = connectEtcd({ endpoints: cluster.endpoints, prefix })
    // A long lease nobody keeps alive: the test ends it by hand, as etcd does when a node dies.
    const leaseId = String((await conn.client.leaseClient.leaseGrant({ TTL: 60, ID: 0 })).ID)
    const m = { node: name, leaseId, unfenced: true }
    const asked = new Map<string, number>()
    const see = async (r: string): Promise<boolean> => { asked.set(r, (asked.get(r) ?? 0) + 1); return canSee(r) }
    const roots = await EtcdWatchRoots.open({ ns: conn.ns, membership: m, ttlSeconds: 5, logger: silentLogger(), jitterMs: () => 0, tickMs: 100 })
    roots.setCheck(async w => await see(w.root) ? null : { reason: 'not found on this node', unsafe: false })
    let n = 0
    roots.onChange(() => { n++ })
    t.teardown(async () => { await roots.close(); conn.close() })
    return { roots, m, changes: () => n, asked: r => asked.get(r) ?? 0, die: async () => { await conn.client.leaseClient.leaseRevoke({ ID: leaseId }) } }
  }
  const a = await node('a', () => true)
  const b = await node('b', () => true)
  // The third node has `root` not mounted; it sees `other`.
  const blind = await node('blind', r => r !== root)
  const w = { root, depth: 2, workspace: null, targets: ['memory'], poll: false, intervalMs: 1000, uid: 0, user: 'root', createdAt: new Date().toISOString() }
  await a.roots.add(w)
  await t.rejects(b.roots.add(w), { code: 'NFS_ERR_WATCH_EXISTS' }, 'the same root cannot be added twice')
  await waitFor('b lists the root', () => b.roots.all().some(x => x.root === root), 10_000)
  t.equal(b.roots.all().find(x => x.root === root)?.node, 'a', 'with the node that added it')
  t.ok(a.roots.mine(root), 'a polls it')
  t.notOk(b.roots.mine(root), 'b does not')
  t.equal(b.roots.pollerOf(root), 'a', 'b knows who does')
  t.equal(b.roots.seedsSince(root), undefined, 'a root never orphaned: a first walk reads from now, as at a start')
  t.ok(b.roots.mine('/not/shared'), 'a root nobody shares (the config\'s) stays every node\'s own')

  // Fenced: a stops polling at its next look, and nobody claims the root while a's key stands.
  const before = a.changes()
  a.m.unfenced = false
  await waitFor('a is told it polls nothing now', () => a.changes() > before, 5000)
  t.notOk(a.roots.mine(root), 'a fenced does not poll')
  t.equal(b.roots.pollerOf(root), 'a', 'its key still stands: nobody else takes it yet')
  a.m.unfenced = true
  await waitFor('a polls again once unfenced', () => a.roots.mine(root), 5000)

  // a dies: b claims the root (the blind node never does), and counts starts from before a stopped.
  await a.die()
  await waitFor('b polls the dead node\'s root', () => b.roots.mine(root), 10_000)
  const claimedBy = Date.now()
  // b's own claim is in b's mirror at once; the third node learns it from its etcd watch a moment later (CI on
  // d6314ca read it at once and found it null).
  await waitFor('the third node sees b\'s claim', () => blind.roots.pollerOf(root) !== null, 5000)
  t.equal(blind.roots.pollerOf(root), 'b', 'b took it over, seen from the third node')
  t.notOk(blind.roots.mine(root), 'the node that cannot see the path did not claim it')
  const since = b.roots.seedsSince(root)
  // The dead poller may have stopped up to a TTL before etcd dropped its key: the first walk reads from before that.
  t.ok(since !== undefined && since <= claimedBy - 5000, 'the new poller reads starts written since before the old one stopped as new')

  // b dies too: only the blind node is left. It claims `other` (added on b) and never `root`: its claim loop asked
  // about `root` twice since, and a claim made at the first ask would have been committed before the second one.
  await b.roots.add({ ...w, root: other })
  await waitFor('the blind node lists the second root', () => blind.roots.pollerOf(other) === 'b', 10_000)
  await b.die()
  await waitFor('the blind node claims the root it sees', () => blind.roots.mine(other), 10_000)
  const asked = blind.asked(root)
  await waitFor('the blind node asked about the root it cannot see twice more', () => blind.asked(root) >= asked + 2, 10_000)
  t.equal(blind.roots.pollerOf(root), null, 'no poller for the root only a blind node is left for')

  // Removed: both keys go in one transaction.
  t.ok(await blind.roots.remove(root), 'removed')
  t.ok(await blind.roots.remove(other), 'removed')
  t.same(blind.roots.all(), [], 'no root left')
  t.notOk(await blind.roots.remove(other), 'a root removed already: false')
})

t.test('a poller that loses the path lets it go, after a bounded time or at once when it is unsafe', async t => {
  const cluster = await startEtcdCluster(t)
  if (cluster === null) return
  const prefix = newPrefix()
  const view = new Map<string, RootRefusal | null>()
  const node = async (name: string, releaseAfterMs: number, now?: () => number): Promise<EtcdWatchRoots> => {
    const conn = connectEtcd({ endpoints: cluster.endpoints, prefix })
    const leaseId = String((await conn.client.leaseClient.leaseGrant({ TTL: 60, ID: 0 })).ID)
    const roots = await EtcdWatchRoots.open({ ns: conn.ns, membership: { node: name, leaseId, unfenced: true }, ttlSeconds: 5, logger: silentLogger(), jitterMs: () => 0, tickMs: 100, releaseAfterMs, ...(now !== undefined ? { now } : {}) })
    // What each node sees of the root's path, set by the test (the daemons' test loses a real mount).
    roots.setCheck(async () => view.get(name) ?? null)
    t.teardown(async () => { await roots.close(); conn.close() })
    return roots
  }
  // x keeps a root it cannot see for 1.5 s on its own clock, which the test moves; y sees it.
  let xNow = 1_000_000
  const x = await node('x', 1500, () => xNow)
  const y = await node('y', 1500)
  const w = { root, depth: 2, workspace: null, targets: [], poll: false, intervalMs: 1000, uid: 1001, user: 'alice', createdAt: new Date().toISOString() }
  await x.add(w)
  t.ok(x.mine(root), 'x, which added it, polls it')
  // (mine() is true of a root a node does not know as shared: wait until y's mirror has it.)
  await waitFor('y lists it, polled by x', () => y.pollerOf(root) === 'x', 15_000)
  view.set('x', { reason: 'not found on this node', unsafe: false })
  // x's clock stands still while its looks (every 0.1 s) note when it lost the path; however many pass, it keeps it.
  const looks = async (what: string): Promise<void> => { const n = x.looks; await waitFor(what, () => x.looks >= n + 2, 15_000) }
  await looks('x looked (a whole look) since it lost the path')
  xNow += 1499
  await looks('x looked again at releaseAfterMs - 1')
  t.equal(x.pollerOf(root), 'x', 'x still polls the root it cannot see at releaseAfterMs - 1')
  t.equal(y.pollerOf(root), 'x', 'and y has not taken it')
  xNow += 1
  await waitFor('y polls the root x cannot see, once x\'s bound is reached', () => y.pollerOf(root) === 'y' && y.mine(root), 15_000)
  // Each node's mirror follows etcd's feed: x hears of y's claim a moment after y does.
  await waitFor('x knows y polls it', () => x.pollerOf(root) === 'y', 15_000)
  t.ok(y.seedsSince(root) !== undefined, 'y reads starts written since before x let it go as new')

  // Unsafe on y (a symlink swapped in): let go at its next look, without waiting; x cannot see it: nobody claims it.
  view.set('y', { reason: 'a component of its path is a symlink now', unsafe: true })
  await waitFor('y gives it up', () => y.pollerOf(root) === null, 15_000)
  // The absence after x's claim loop has seen the root unpolled: a whole claim pass begun since x's mirror knew it.
  await waitFor('x knows nobody polls it', () => x.pollerOf(root) === null, 15_000)
  const passes = x.claimPasses
  await waitFor('x ran a whole claim pass since', () => x.claimPasses >= passes + 2, 15_000)
  t.notOk(x.mine(root), 'x, which cannot see it, does not claim it')
  t.equal(y.pollerOf(root), null, 'nor does y, for which it is unsafe')
  // The path good again on x: x claims it back at a look.
  view.set('x', null)
  await waitFor('x polls it again', () => x.mine(root), 15_000)
  await waitFor('y knows x polls it', () => y.pollerOf(root) === 'x', 15_000)
})
