// CLUSTER.md "Keys", watches/ and wown/: a watch root added through the API on one node is listed on every node, and
// exactly one node walks and polls it. Two real daemons on a real 3-member etcd, one shared dir. Who watches a root is
// counted from outside the daemons too: the inotify watches each daemon's process holds on the root's inode
// (/proc/<pid>/fdinfo), beside what each node's GET /watches and /status say. Then the poller is killed (-9): the
// other node claims the root once the dead node's lease is gone, and a Nextflow start written after the kill, before
// that claim, still becomes one auto-run. A root removed on b is no longer watched by a, its poller.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { WatchView } from '../../daemon/contract/watches.js'
import { errorCode } from '../helpers/cli.js'
import { startClusterDaemons } from '../helpers/cluster-daemons.js'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import { ensureUsers } from '../helpers/users.js'
import { waitFor } from '../helpers/wait.js'
import { inotifyOn } from '../helpers/inotify.js'

t.test('a watch root added on a: listed on b, polled by one node, taken over after kill -9, removed from b', async t => {
  const c = await startClusterDaemons(t, { leaseTtlSeconds: 5 })
  if (c === null) return
  const [alice] = ensureUsers(['alice', 'bob'])
  const nodes = ['a', 'b']
  // The memory target (a test fake) is offered only where the config names it.
  const config = { runs: { livenessIntervalMs: 500, defaultTargets: ['memory'] } }
  // b was a single node once: its state dir still holds a watches.json, which cluster mode does not read.
  const bState = join(dirname(c.work), 'b', 'state')
  const oldRoot = join(c.work, 'old-single-node-root')
  mkdirSync(oldRoot)
  mkdirSync(dirname(bState), { mode: 0o755 })
  mkdirSync(bState, { mode: 0o700 })
  writeFileSync(join(bState, 'watches.json'), JSON.stringify({ format: 1, watches: [{ root: oldRoot, depth: 3, workspace: null, targets: [], poll: false, intervalMs: 1000, uid: 0, user: 'root', createdAt: new Date().toISOString(), version: 1 }] }), { mode: 0o600 })
  await Promise.all(nodes.map(async n => await c.start(n, { config })))
  const warning = c.node('b').daemon.log().split('\n').find(l => l.includes('watches.json is not read in cluster mode'))
  t.ok(warning?.includes(join(bState, 'watches.json')) === true && warning.includes('cluster import watches'), 'b warns at its start, naming the file and the import')
  t.equal((await c.cli('a', ['secrets', 'add', 'AUTO_TOKEN'], { user: 'alice', input: 'auto-1\n' })).code, 0)

  // Every node's event feed, as an admin sees it (all users), and alice's on b: watch.added/removed come from etcd's
  // feed on every node, once each, also on the node that made the change.
  const feeds = { a: await c.events('a'), b: await c.events('b') }
  const aliceOnB = await c.events('b', 'alice')
  const kept = join(c.work, 'kept')
  const dropped = join(c.work, 'dropped')
  const launch = join(kept, 'l0')
  for (const d of [kept, dropped, launch]) mkdirSync(d)
  chownSync(launch, alice!.uid, alice!.gid)
  for (const d of [kept, dropped]) {
    const r = await c.cli('a', ['watch', 'add', d, '--target', 'memory', '--depth', '2'])
    t.equal(r.code, 0, `watch add ${d} on a`, { stderr: r.stderr })
  }

  const row = async (n: string, root: string): Promise<WatchView | undefined> =>
    ((await c.call(n, 'GET', '/watches')).body as WatchView[]).find(w => w.root === root)
  const pid = (n: string): number => c.node(n).daemon.process.pid!
  const watching = (root: string, among = nodes): string[] => among.filter(n => inotifyOn(pid(n), root))
  const saysItPolls = async (root: string, among = nodes): Promise<string[]> => {
    const out: string[] = []
    for (const n of among) if ((await row(n, root))?.poller === n) out.push(n)
    return out
  }

  // Alice's own root, added by her on a: her dir, reached without a symlink (the checks of `watch add`). Beside it, a
  // dir she must not read (root's, 0700 once the start below is written) holding a dir of hers with a Nextflow start.
  const aliceDir = join(c.work, 'alice')
  const hers = join(aliceDir, 'a', 'proj')
  const vault = join(c.work, 'vault')
  const behind = join(vault, 'proj', 'l0')
  for (const d of [hers, behind]) mkdirSync(d, { recursive: true })
  for (const d of [aliceDir, join(aliceDir, 'a'), hers, join(vault, 'proj'), behind]) chownSync(d, alice!.uid, alice!.gid)
  const added = await c.cli('a', ['watch', 'add', hers, '--target', 'memory', '--depth', '2'], { user: 'alice' })
  t.equal(added.code, 0, 'alice adds her root on a', { stderr: added.stderr })

  // Listed on b with its poller, a (the node that added it claims it in the same transaction).
  await waitFor('b lists both roots, polled by a', async () => (await row('b', kept))?.poller === 'a' && (await row('b', dropped))?.poller === 'a', 15_000, 100)
  for (const root of [kept, dropped]) {
    t.same(await saysItPolls(root), ['a'], `${root}: a says it polls it, b does not`)
    t.same(watching(root), ['a'], `${root}: only a's process watches it (inotify, from /proc)`)
  }
  t.equal(await row('b', oldRoot), undefined, 'the root of b\'s old watches.json is not watched or listed')
  for (const [n, polled] of [['a', 3], ['b', 0]] as const) {
    const s = (await c.call(n, 'GET', '/status')).body as { watches: { roots: number, polledHere?: number } }
    t.equal(s.watches.roots, 3, `${n}: status lists the three roots`)
    t.equal(s.watches.polledHere, polled, `${n}: status says it polls ${polled}`)
  }
  t.match((await c.cli('b', ['watch', 'list'])).stdout, /POLLER/, 'watch list on b has the poller column')
  // Another user, on the node that did not add it: an admin's root is neither shown to bob nor removable by him.
  const bobList = await c.cli('b', ['watch', 'list', '--json'], { user: 'bob' })
  t.equal(bobList.code, 0)
  t.notOk(bobList.stdout.includes(kept), 'bob\'s watch list on b does not show the admin\'s root')
  const bobRemove = await c.cli('b', ['watch', 'remove', dropped], { user: 'bob' })
  t.equal(bobRemove.code, 3, 'bob cannot remove it on b (exit 3)')
  t.equal(errorCode(bobRemove.stderr), 'NFS_ERR_WATCH_NOT_FOUND')
  t.same(watching(dropped), ['a'], 'and a still watches it')

  // Removed on b: a, its poller, stops watching it.
  t.equal((await c.cli('b', ['watch', 'remove', dropped])).code, 0, 'watch remove on b')
  await waitFor('a no longer lists or watches the removed root', async () => (await row('a', dropped)) === undefined && watching(dropped, ['a']).length === 0, 15_000, 100)
  t.equal(await row('b', dropped), undefined, 'b no longer lists it')
  t.ok(c.node('a').daemon.log().includes('a shared watch root was removed'), 'a logged why it stopped')
  t.same(watching(kept), ['a'], 'the other root is still watched by a alone')

  const count = (n: 'a' | 'b', type: string, root: string): number => feeds[n].all().filter(e => e.type === type && e.reason === root).length
  for (const n of nodes as Array<'a' | 'b'>) {
    await feeds[n].waitFor(e => e.type === 'watch.removed' && e.reason === dropped, 15_000)
    t.same([count(n, 'watch.added', kept), count(n, 'watch.added', dropped), count(n, 'watch.removed', dropped), count(n, 'watch.removed', kept)], [1, 1, 1, 0],
      `${n}'s feed: each root's watch.added once, the removed root's watch.removed once (added on a, removed on b)`)
  }
  t.match(feeds.b.all().find(e => e.type === 'watch.added' && e.reason === kept), { user: 'root' }, 'named for the root\'s owner')
  await aliceOnB.waitFor(e => e.type === 'watch.added' && e.reason === hers, 15_000)
  t.same(aliceOnB.all().filter(e => String(e.type).startsWith('watch.')).map(e => e.reason), [hers], 'alice\'s feed on b: her own root\'s watch.added, none of the admin\'s roots')

  // kill -9 of the poller; a start written right after, while nobody polls the root.
  const killedAt = Date.now()
  await c.node('a').daemon.stop('SIGKILL')
  const nf = await startFakeNextflow({ launchDir: launch, uid: alice!.uid, gid: alice!.gid })
  t.teardown(() => nf.close())
  // Attack (item 4): while nobody polls alice's root, a start is written behind the vault, the vault closed to her, and
  // she swaps a component of her root's path for a symlink into it. The node that takes her root over polls as root.
  const hidden = await startFakeNextflow({ launchDir: behind, uid: alice!.uid, gid: alice!.gid })
  t.teardown(() => hidden.close())
  chmodSync(vault, 0o700)
  const swap = spawnSync('runuser', ['-u', 'alice', '--', 'sh', '-c', 'mv "$0" "$0.old" && ln -s "$1" "$0"', join(aliceDir, 'a'), vault], { encoding: 'utf8' })
  t.equal(swap.status, 0, 'alice swapped a symlink into her root\'s path', { stderr: swap.stderr })
  t.not(spawnSync('runuser', ['-u', 'alice', '--', 'ls', join(vault, 'proj')]).status, 0, 'alice cannot read the dir behind it')
  await waitFor('b polls the root of the dead node', async () => (await saysItPolls(kept, ['b'])).length === 1 && watching(kept, ['b']).length === 1, 30_000, 100)
  t.comment(`takeover of the watch root: ${Date.now() - killedAt} ms after the kill (lease TTL 5 s)`)
  t.ok(c.node('b').daemon.log().includes('polling a shared watch root'), 'b logged the claim')

  const autoRuns = async (): Promise<Array<{ runId: string, launchDir: string, runName: string | null }>> =>
    ((await c.call('b', 'GET', '/runs?all=true')).body as Array<{ runId: string, mode: string, launchDir: string, runName: string | null }>).filter(r => r.mode === 'auto' && r.launchDir === launch)
  await waitFor('an auto-run for the start written after the kill', async () => (await autoRuns()).length > 0, 30_000, 200).catch(() => {})
  const runs = await autoRuns()
  t.equal(runs.length, 1, 'one auto-run for the start')
  t.equal(runs[0]?.runName, nf.runName, 'with its run name')

  // b took the admin's root over and made its auto-run: it judged alice's root in that claim pass too.
  const fromBehind = async (): Promise<unknown[]> => ((await c.call('b', 'GET', '/runs?all=true')).body as Array<{ mode: string, launchDir: string }>)
    .filter(r => r.mode === 'auto' && (r.launchDir.startsWith(aliceDir) || r.launchDir.startsWith(vault)))
  await waitFor('b refused alice\'s root (or read through it)', async () => c.node('b').daemon.log().includes('not claiming a shared watch root') || (await fromBehind()).length > 0, 15_000, 200).catch(() => {})
  t.same(await fromBehind(), [], 'no history behind the symlink became a run of alice\'s')
  t.equal((await row('b', hers))?.poller, null, 'nobody polls her root while its path holds a symlink')
  t.notOk(inotifyOn(pid('b'), join(vault, 'proj')), 'b\'s process watches nothing behind the symlink (inotify, from /proc)')
  t.ok(c.node('b').daemon.log().split('\n').some(l => l.includes('not claiming a shared watch root') && l.includes('symlink')), 'b logged why')
})
