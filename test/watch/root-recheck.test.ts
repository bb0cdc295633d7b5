// A single node's root whose path changed after `watch add`: the walk at the next start, and anything new under the
// root while it is watched (a dir made), make the checks of `watch add` again (root-check.ts) and do not go, as root,
// through a component alice turned into a symlink into a dir she cannot read. Real dirs, a real user (alice, who swaps
// the symlink in herself with runuser), the real watch room in this process, restarted as a daemon restarts.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { WatchView } from '../../daemon/contract/watches.js'
import { ensureUsers } from '../helpers/users.js'
import { waitFor, watchFixture } from '../helpers/watch.js'
import { as, watchApp } from '../helpers/watch-app.js'

const [alice] = ensureUsers(['alice'])

t.test('a component swapped for a symlink after the add: the next start does not walk through it', async t => {
  const f = await watchFixture(t, { mode: 'system' })
  const app = await watchApp(t, f, { alice: alice!.uid })
  chmodSync(f.dir, 0o755)
  const mine = join(f.dir, 'alice')
  const root = join(mine, 'a', 'proj')
  const vault = join(f.dir, 'vault')
  const behind = join(vault, 'proj', 'l0')
  for (const d of [root, behind]) mkdirSync(d, { recursive: true })
  for (const d of [mine, join(mine, 'a'), root, join(vault, 'proj'), behind]) chownSync(d, alice!.uid, alice!.gid)
  mkdirSync(join(behind, '.nextflow'))
  writeFileSync(join(behind, '.nextflow', 'history'), '')
  chownSync(join(behind, '.nextflow'), alice!.uid, alice!.gid)
  chownSync(join(behind, '.nextflow', 'history'), alice!.uid, alice!.gid)
  chmodSync(vault, 0o700)
  const res = await app.inject({ method: 'POST', url: '/api/v1/watches', headers: as('alice'), payload: { root, poll: true, intervalMs: 1000, depth: 2 } })
  t.equal(res.statusCode, 201, res.body)
  await waitFor('walked', () => (f.service.summary().walking ?? []).length === 0)

  const swap = spawnSync('runuser', ['-u', 'alice', '--', 'sh', '-c', 'mv "$0" "$0.old" && ln -s "$1" "$0"', join(mine, 'a'), vault], { encoding: 'utf8' })
  t.equal(swap.status, 0, 'alice swapped a symlink into her root\'s path', { stderr: swap.stderr })
  t.not(spawnSync('runuser', ['-u', 'alice', '--', 'ls', join(vault, 'proj')]).status, 0, 'alice cannot read the dir behind it')
  const g = await f.restart()
  const again = await watchApp(t, g, { alice: alice!.uid })
  await waitFor('the start\'s walks are done', () => (g.service.summary().walking ?? []).length === 0)
  const watched = Object.keys(g.service.watcher.watched(`root:${root}`))
  t.notOk(watched.some(p => p.startsWith(join(root, 'l0'))), 'the dir behind the symlink is not watched')
  const row = (await again.inject({ url: '/api/v1/watches', headers: as('alice') })).json<WatchView[]>().find(w => w.root === root)
  t.match(row, { launchDirs: 0, degraded: /not walked: .*symlink/ }, 'her root is listed, not walked, and says why')
})

t.test('a dir made under a watched root after the swap is not walked through the symlink', async t => {
  const f = await watchFixture(t, { mode: 'system' })
  const app = await watchApp(t, f, { alice: alice!.uid })
  chmodSync(f.dir, 0o755)
  const mine = join(f.dir, 'alice')
  const root = join(mine, 'a', 'proj')
  const vault = join(f.dir, 'vault')
  const behind = join(vault, 'proj', 'l0')
  for (const d of [root, join(behind, '.nextflow')]) mkdirSync(d, { recursive: true })
  writeFileSync(join(behind, '.nextflow', 'history'), '')
  for (const d of [mine, join(mine, 'a'), root, join(vault, 'proj'), behind, join(behind, '.nextflow'), join(behind, '.nextflow', 'history')]) chownSync(d, alice!.uid, alice!.gid)
  chmodSync(vault, 0o700)
  const res = await app.inject({ method: 'POST', url: '/api/v1/watches', headers: as('alice'), payload: { root, depth: 2 } })
  t.equal(res.statusCode, 201, res.body)
  await waitFor('walked', () => (f.service.summary().walking ?? []).length === 0)
  // The swap, then a dir of the same name made in her real (old) tree, which the daemon still watches by inode: its
  // event names the dir by the root's path, which now leads into the vault.
  const swap = spawnSync('runuser', ['-u', 'alice', '--', 'sh', '-c', 'mv "$0" "$0.old" && ln -s "$1" "$0" && mkdir "$0.old/proj/l0"', join(mine, 'a'), vault], { encoding: 'utf8' })
  t.equal(swap.status, 0, 'alice swapped the symlink in and made the dir', { stderr: swap.stderr })
  const launchDirs = (): number => f.service.watcher.groups().find(g => g.key === `root:${root}`)?.launchDirs ?? 0
  const row = async (): Promise<WatchView | undefined> => (await app.inject({ url: '/api/v1/watches', headers: as('alice') })).json<WatchView[]>().find(w => w.root === root)
  await waitFor('the new dir judged', async () => launchDirs() > 0 || (await row())?.degraded != null, 15_000)
  t.equal(launchDirs(), 0, 'no launch dir found behind the symlink')
  t.match((await row())?.degraded, /not walked: .*symlink/, 'the root stopped, saying why')
})

t.test('a root stopped as unsafe is watched again once alice undoes the swap, without a restart', async t => {
  const f = await watchFixture(t, { mode: 'system', rootRecheckMs: 100 })
  const app = await watchApp(t, f, { alice: alice!.uid })
  chmodSync(f.dir, 0o755)
  const mine = join(f.dir, 'alice')
  const root = join(mine, 'a', 'proj')
  const vault = join(f.dir, 'vault')
  for (const d of [join(root, 'l1', '.nextflow'), join(vault, 'proj')]) mkdirSync(d, { recursive: true })
  writeFileSync(join(root, 'l1', '.nextflow', 'history'), '')
  for (const d of [mine, join(mine, 'a'), root, join(root, 'l1'), join(root, 'l1', '.nextflow'), join(root, 'l1', '.nextflow', 'history'), join(vault, 'proj')]) chownSync(d, alice!.uid, alice!.gid)
  chmodSync(vault, 0o700)
  const res = await app.inject({ method: 'POST', url: '/api/v1/watches', headers: as('alice'), payload: { root, depth: 2 } })
  t.equal(res.statusCode, 201, res.body)
  await waitFor('walked', () => (f.service.summary().walking ?? []).length === 0)
  const row = async (): Promise<WatchView | undefined> => (await app.inject({ url: '/api/v1/watches', headers: as('alice') })).json<WatchView[]>().find(w => w.root === root)
  t.match(await row(), { launchDirs: 1, degraded: null }, 'her launch dir is watched')
  // The swap and a dir made in her old tree: the root stops (as above).
  const swap = spawnSync('runuser', ['-u', 'alice', '--', 'sh', '-c', 'mv "$0" "$0.old" && ln -s "$1" "$0" && mkdir "$0.old/proj/l2"', join(mine, 'a'), vault], { encoding: 'utf8' })
  t.equal(swap.status, 0, 'alice swapped the symlink in and made a dir', { stderr: swap.stderr })
  await waitFor('the root stopped', async () => /not walked: .*symlink/.test((await row())?.degraded ?? ''), 15_000)
  // While the symlink is there the looks find it again and do not walk; once alice undoes it, the next look does.
  await f.service.recheckRefused()
  t.match((await row())?.degraded, /not walked: .*symlink/, 'still stopped while the symlink is there')
  const undo = spawnSync('runuser', ['-u', 'alice', '--', 'sh', '-c', 'rm "$0" && mv "$0.old" "$0"', join(mine, 'a')], { encoding: 'utf8' })
  t.equal(undo.status, 0, 'alice undid the swap', { stderr: undo.stderr })
  await waitFor('watched again', async () => { const w = await row(); return w?.degraded === null && w.launchDirs === 1 && w.walking === false }, 15_000)
  t.pass('her root is walked and watched again with no restart')
})
