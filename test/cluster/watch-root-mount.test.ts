// A poller that loses a shared watch root's mount lets it go (cluster/watch-roots.ts, #recheck): after a bounded time
// (the lease TTL) of not seeing the path it releases its wown/ key, and a node that sees the path takes the root over
// and reads the starts written while nobody saw it as new. Two real daemons on a real 3-member etcd; a runs in a mount
// namespace of its own, and loses the mount there for real: an empty tmpfs is mounted over the root's parent in a's
// view only (nsenter), while b, in the host's view, still sees the dir. Who watches the root is read from /proc too.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { WatchView } from '../../daemon/contract/watches.js'
import { startClusterDaemons } from '../helpers/cluster-daemons.js'
import { startFakeNextflow } from '../helpers/fake-nextflow.js'
import { ensureUsers } from '../helpers/users.js'
import { waitFor } from '../helpers/wait.js'

/** Does process `pid` hold an inotify watch on the inode `ino`? Read from /proc, not asked of the daemon. */
function inotifyOn (pid: number, ino: number): boolean {
  const hex = ino.toString(16)
  let fds: string[]
  try {
    fds = readdirSync(`/proc/${pid}/fdinfo`)
  } catch {
    return false
  }
  return fds.some(fd => {
    try {
      return [...readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').matchAll(/^inotify wd:\S+ ino:([0-9a-f]+) /gm)].some(m => m[1] === hex)
    } catch {
      return false
    }
  })
}

t.test('a poller that loses the mount releases the root; the node that sees it claims it', async t => {
  if (spawnSync('unshare', ['--mount', 'true']).status !== 0) {
    t.plan(0, 'no mount namespaces here (unshare --mount)')
    return
  }
  const c = await startClusterDaemons(t, { leaseTtlSeconds: 5 })
  if (c === null) return
  const [alice] = ensureUsers(['alice'])
  const config = { runs: { livenessIntervalMs: 500, defaultTargets: ['memory'] } }
  const mnt = join(c.work, 'mnt')
  const root = join(mnt, 'proj')
  const launch = join(root, 'l0')
  mkdirSync(launch, { recursive: true })
  chownSync(launch, alice!.uid, alice!.gid)
  await c.start('a', { config, wrap: ['unshare', '--mount', '--propagation', 'private', '--'] })
  await c.start('b', { config })
  t.equal((await c.cli('a', ['secrets', 'add', 'AUTO_TOKEN'], { user: 'alice', input: 'auto-1\n' })).code, 0)
  const added = await c.cli('a', ['watch', 'add', root, '--target', 'memory', '--depth', '2'])
  t.equal(added.code, 0, 'watch add on a', { stderr: added.stderr })
  const pollerOn = async (n: string): Promise<string | null | undefined> => ((await c.call(n, 'GET', '/watches')).body as WatchView[]).find(w => w.root === root)?.poller
  await waitFor('b lists the root, polled by a', async () => await pollerOn('b') === 'a', 15_000, 100)
  const ino = statSync(root).ino
  const pid = (n: string): number => c.node(n).daemon.process.pid!
  t.ok(inotifyOn(pid('a'), ino) && !inotifyOn(pid('b'), ino), 'a watches it, b does not')

  // a loses the mount: in a's mount namespace only, an empty tmpfs covers the root's parent.
  const cover = spawnSync('nsenter', ['-t', String(pid('a')), '-m', 'mount', '-t', 'tmpfs', '-o', 'size=1m', 'nfs-test-cover', mnt], { encoding: 'utf8' })
  t.equal(cover.status, 0, 'the mount is gone in a\'s view', { stderr: cover.stderr })
  t.not(spawnSync('nsenter', ['-t', String(pid('a')), '-m', 'test', '-d', root]).status, 0, 'a cannot see the root')
  t.ok(existsSync(root), 'b (the host\'s view) still sees it')
  const lostAt = Date.now()
  // A start while its poller is blind: the node that takes the root over must still make it an auto-run.
  const nf = await startFakeNextflow({ launchDir: launch, uid: alice!.uid, gid: alice!.gid })
  t.teardown(() => nf.close())

  await waitFor('b polls the root a lost', async () => await pollerOn('b') === 'b' && await pollerOn('a') === 'b' && inotifyOn(pid('b'), ino), 30_000, 100)
  t.comment(`root released by a and claimed by b ${Date.now() - lostAt} ms after a lost the mount (lease TTL 5 s, the release bound)`)
  t.ok(c.node('a').daemon.log().includes('released a shared watch root this node cannot see'), 'a logged the release')
  const autoRuns = async (): Promise<Array<{ runName: string | null }>> =>
    ((await c.call('b', 'GET', '/runs?all=true')).body as Array<{ mode: string, launchDir: string, runName: string | null }>).filter(r => r.mode === 'auto' && r.launchDir === launch)
  await waitFor('an auto-run for the start written while a was blind', async () => (await autoRuns()).length > 0, 30_000, 200).catch(() => {})
  const runs = await autoRuns()
  t.equal(runs.length, 1, 'one auto-run for the start')
  t.equal(runs[0]?.runName, nf.runName, 'with its run name')
  t.comment(`auto-run seen ${Date.now() - lostAt} ms after the loss`)
})
