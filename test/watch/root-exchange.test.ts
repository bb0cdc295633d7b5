// Review 5 of issue 16, the swap between check and use: alice exchanges a component of her own root's path with a
// symlink into a root-owned 0700 dir, atomically and in a tight loop (renameat2 RENAME_EXCHANGE, as the real user
// alice through runuser), while the daemon reads her launch dir on each of her writes and walks her root at each
// start. Whatever the path names at any instant, the daemon reads, watches and auto-runs only her real tree: the root
// is opened one component at a time without following a symlink and everything under it is reached from that fd
// (daemon/watch/held-root.ts). Behind the symlink sits a launch dir of hers (she made it before the vault was closed)
// whose history gets a fresh start at each round: a read through the path would raise it.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { appendFileSync, chmodSync, chownSync, closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { WatcherEvent } from '../../daemon/watch/watcher.js'
import { inotifyOn } from '../helpers/inotify.js'
import { renameExchangeSkip, startSwapper } from '../helpers/rename-exchange.js'
import { ensureUsers } from '../helpers/users.js'
import { waitFor, watchFixture, type WatchFixture } from '../helpers/watch.js'
import { as, watchApp } from '../helpers/watch-app.js'

const [alice] = ensureUsers(['alice'])

function startLine (runName: string, i: number): string {
  const session = `5a5a5a5a-0000-4000-8000-${String(i).padStart(12, '0')}`
  const now = new Date()
  const ts = `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}-${String(now.getDate()).padStart(2, '0')} ${now.toTimeString().slice(0, 8)}`
  return `${ts}\t-\t${runName}\t-\tabc\t${session}\tnextflow run x\n`
}

t.test('alice exchanging a component with a symlink in a loop: nothing behind it is read, watched or auto-run', { skip: renameExchangeSkip }, async t => {
  const f = await watchFixture(t, { mode: 'system' })
  chmodSync(f.dir, 0o755)
  const mine = join(f.dir, 'alice')
  const root = join(mine, 'a', 'proj')
  const vault = join(f.dir, 'vault')
  const real = join(root, 'l0')
  const behind = join(vault, 'proj', 'l0')
  for (const d of [join(real, '.nextflow'), join(behind, '.nextflow')]) mkdirSync(d, { recursive: true })
  for (const l of [real, behind]) writeFileSync(join(l, '.nextflow', 'history'), '')
  for (const d of [mine, join(mine, 'a'), root, real, join(vault, 'proj'), behind]) chownSync(d, alice!.uid, alice!.gid)
  for (const l of [real, behind]) for (const p of [join(l, '.nextflow'), join(l, '.nextflow', 'history')]) chownSync(p, alice!.uid, alice!.gid)
  chmodSync(vault, 0o700)
  const link = spawnSync('runuser', ['-u', 'alice', '--', 'ln', '-s', vault, join(mine, 'a.link')], { encoding: 'utf8' })
  t.equal(link.status, 0, 'alice made her symlink to the vault', { stderr: link.stderr })
  t.not(spawnSync('runuser', ['-u', 'alice', '--', 'ls', join(vault, 'proj')]).status, 0, 'alice cannot read the dir behind it')
  const app = await watchApp(t, f, { alice: alice!.uid })
  const res = await app.inject({ method: 'POST', url: '/api/v1/watches', headers: as('alice'), payload: { root, depth: 2, targets: ['memory'] } })
  t.equal(res.statusCode, 201, res.body)
  await waitFor('walked', () => (f.service.summary().walking ?? []).length === 0)

  // The test's own writes go through fds opened now: from here on her path names either tree.
  const realHistory = openSync(join(real, '.nextflow', 'history'), 'a')
  t.teardown(() => { closeSync(realHistory) })
  startSwapper(t, 'alice', mine, ['a', 'a.link'], join(f.dir, 'stop-swapping'))

  // Reads: each round, a start in her real history and one behind the symlink; the daemon reads the launch dir on
  // her write. A read through the path lands behind the symlink about half the time.
  const seen: string[] = []
  const listen = (x: WatchFixture): void => { x.service.watcher.on((e: WatcherEvent) => { if (e.type === 'run-started') seen.push(e.record.runName) }) }
  listen(f)
  const ROUNDS = 20
  for (let i = 0; i < ROUNDS; i++) {
    appendFileSync(join(behind, '.nextflow', 'history'), startLine(`vault_${i}`, 1000 + i))
    appendFileSync(realHistory, startLine(`real_${i}`, i))
    const read = await waitFor(`round ${i} read`, () => seen.includes(`real_${i}`) || seen.some(n => n.startsWith('vault_')), 10_000).then(() => true, () => false)
    // Not read at all: the root was stopped (the old code's guard saw the symlink at last); the counts below say so.
    if (!read) break
  }
  t.same(seen.filter(n => n.startsWith('vault_')), [], 'no start read from behind the symlink')
  t.equal(seen.filter(n => n.startsWith('real_')).length, ROUNDS, 'every start in her real tree was read')

  // Walks: the daemon restarted while alice swaps; each start walks her root (or refuses it while a symlink is there).
  const fixtures = [f]
  let g = f
  for (let i = 0; i < 3; i++) {
    appendFileSync(join(behind, '.nextflow', 'history'), startLine(`vault_walk_${i}`, 2000 + i))
    g = await g.restart()
    fixtures.push(g)
    await waitFor('the start\'s walks are done', () => (g.service.summary().walking ?? []).length === 0)
    await g.service.watcher.idle()
    for (const d of [join(vault, 'proj'), behind, join(behind, '.nextflow')]) t.notOk(inotifyOn(process.pid, d), `start ${i}: no inotify watch on ${d.slice(vault.length)} behind the symlink`)
  }
  const decided = fixtures.flatMap(x => x.autoRuns).map(d => d.runName)
  t.same(decided.filter(n => n.startsWith('vault_')), [], 'no auto-run decided from behind the symlink')
  t.ok(decided.some(n => n.startsWith('real_')), 'her real starts were auto-run decisions (the reads were real)')
})
