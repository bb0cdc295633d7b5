// A user's walk (`owner`) enters only that user's dirs, and the owner is checked on the fd the walk holds, not on a
// name looked up before the open: between an lstat by name and the open by name alice can rename a dir of bob's that
// she can read (but does not own) into the place of her own (renameat2 RENAME_EXCHANGE in a dir of hers), and a
// check of the name then vouches for a dir that is not the one walked. Tests: a seam of WalkFs whose lstat answers
// for alice's dir while its open returns bob's (deterministic), the real swap by alice in a loop while her root is
// walked, and a swap after the walk, before the watcher sets its watches and reads (they check the owner on their fd).
// Alice's dir holds her launch dir `la`; bob's holds `lb`, a launch dir of alice's (made while bob let her write
// there): her walk may take it only through bob's dir, so whatever the names say at any instant, `lb` is never
// reported and no dir of bob's is read.
import t from 'tap'
import { chmodSync, chownSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { HeldRoot, openRoot } from '../../daemon/watch/held-root.js'
import { nodeWalkFs, walkTree, type WalkDir, type WalkFs, type WalkResult } from '../../daemon/watch/walk.js'
import { inotifyOn } from '../helpers/inotify.js'
import { renameExchangeSkip, startSwapper } from '../helpers/rename-exchange.js'
import type { Teardown } from '../helpers/runs.js'
import { requireUsers } from '../helpers/requires.js'
import { waitFor, watchFixture } from '../helpers/watch.js'
import { as, watchApp } from '../helpers/watch-app.js'

const [alice, bob] = requireUsers(t, ['alice', 'bob'])

interface Tree { base: string, root: string, mine: string, theirs: string }

/**
 * base (0755) / root (alice's) / a (alice's) / la (her launch dir), and root / b (bob's, 0755: alice can read it) / lb
 * (a launch dir of alice's).
 */
function tree (t: Teardown): Tree {
  const base = mkdtempSync('/tmp/nfs-walkown-')
  t.teardown(() => rmSync(base, { recursive: true, force: true }))
  chmodSync(base, 0o755)
  const root = join(base, 'root')
  const mine = join(root, 'a')
  const theirs = join(root, 'b')
  for (const [dir, launch, who] of [[mine, 'la', alice!], [theirs, 'lb', bob!]] as const) {
    mkdirSync(join(dir, launch, '.nextflow'), { recursive: true })
    writeFileSync(join(dir, launch, '.nextflow', 'history'), '')
    for (const p of [join(dir, launch), join(dir, launch, '.nextflow'), join(dir, launch, '.nextflow', 'history')]) chownSync(p, alice!.uid, alice!.gid)
    chownSync(dir, who.uid, who.gid)
    chmodSync(dir, 0o755)
  }
  chownSync(root, alice!.uid, alice!.gid)
  chmodSync(root, 0o755)
  return { base, root, mine, theirs }
}

async function hold (t: Teardown, root: string): Promise<HeldRoot> {
  const held = await openRoot(root, alice!.uid)
  if (!(held instanceof HeldRoot)) throw new Error(`the root did not open: ${held.reason}`)
  t.teardown(async () => await held.close())
  return held
}

/** The fs, plus a record of each held dir read whose fd says it is not alice's (a dir of bob's entered). */
function recording (inner: WalkFs): { fs: WalkFs, entered: number[] } {
  const entered: number[] = []
  return {
    entered,
    fs: {
      ...inner,
      readdir: async (dir: string, at?: WalkDir) => {
        if (at !== undefined) {
          const uid = (await at.stat()).uid
          if (uid !== alice!.uid) entered.push(uid)
        }
        return await inner.readdir(dir, at)
      }
    }
  }
}

const ofBob = (got: WalkResult): string[] => [...got.dirs.map(d => d.path), ...got.launchDirs].filter(p => p.includes('/lb'))

/**
 * A WalkFs whose lstat of `<base>/<dir>/.nextflow/history` (the walk's last look at that dir) makes the renames (paths
 * under base), once, before it answers: a swap between the walk's check and whatever comes after it. Armed with base.
 */
function swapOnLook (dir: string, moves: Array<[string, string]>): { wrapFs: (inner: WalkFs) => WalkFs, arm: (base: string) => void, swapped: () => boolean } {
  let swapped = false
  let base = ''
  const wrapFs = (inner: WalkFs): WalkFs => ({
    ...inner,
    lstat: async (path: string, at?: WalkDir) => {
      const st = await inner.lstat(path, at)
      if (!swapped && base !== '' && path === join(base, dir, '.nextflow', 'history')) {
        swapped = true
        for (const [from, to] of moves) renameSync(join(base, from), join(base, to))
      }
      return st
    }
  })
  return { wrapFs, arm: (b) => { base = b }, swapped: () => swapped }
}

t.test('the owner is checked on the dir opened, not on the name lstat\'ed before (a seam: lstat and open disagree)', async t => {
  const { root, mine, theirs } = tree(t)
  const held = await hold(t, root)
  const inner = held.fs()
  // The swap landing exactly between the two: lstat of `a` sees alice's dir, the open of `a` gets bob's.
  const { fs, entered } = recording({
    ...inner,
    hold: async (path: string, parent?: WalkDir) => await inner.hold!(path === mine ? theirs : path, parent)
  })
  const got = await walkTree(root, 0, 3, fs, { owner: alice!.uid })
  t.same(ofBob(got), [], 'nothing below bob\'s dir reported')
  t.same(entered, [], 'no dir of bob\'s read')
  t.notOk(got.dirs.some(d => d.path === mine), 'the name whose open was another user\'s dir is not a dir of the walk')

  // Without the seam the same walk finds alice's launch dir, and the walk by path (no dir held) still skips bob's dir.
  t.same((await walkTree(root, 0, 3, held.fs(), { owner: alice!.uid })).launchDirs, [join(mine, 'la')], 'held: her launch dir')
  const byPath = await walkTree(root, 0, 3, nodeWalkFs, { owner: alice!.uid })
  t.same(byPath.launchDirs, [join(mine, 'la')], 'by path: her launch dir')
  t.same(ofBob(byPath), [], 'by path: nothing below bob\'s dir')
})

t.test('alice exchanging her dir with a dir of bob\'s in a loop while her root is walked: bob\'s is never entered', { skip: renameExchangeSkip }, async t => {
  const { base, root } = tree(t)
  const swapper = startSwapper(t, 'alice', root, ['a', 'b'], join(base, 'stop-swapping'))
  const held = await hold(t, root)
  const { fs, entered } = recording(held.fs())
  const reported: string[] = []
  let found = 0
  let swapped = 0
  const WALKS = 400
  for (let i = 0; i < WALKS; i++) {
    const got = await walkTree(root, 0, 3, fs, { owner: alice!.uid })
    reported.push(...ofBob(got))
    found += got.launchDirs.length
    if (got.launchDirs.includes(join(root, 'b', 'la'))) swapped++
  }
  t.equal(await swapper.stop(), 0, `alice's swapper ran and stopped cleanly ${swapper.stderr()}`)
  t.same(reported.slice(0, 5), [], `nothing below bob's dir reported in ${WALKS} walks (${reported.length} times)`)
  t.same(entered.slice(0, 5), [], `no dir of bob's read in ${WALKS} walks (${entered.length} times)`)
  // Her own dir is found under whichever name it has when walked (or skipped when the swap lands mid-walk): the walks
  // were real, and so was the swap (her `la` seen under the name `b`).
  t.ok(found > 0, `her launch dir found in ${found} of ${WALKS} walks`)
  t.ok(swapped > 0, `her dir walked under bob's dir's name in ${swapped} walks`)
})

t.test('a dir checked by the walk and swapped for bob\'s before its watch is set: no watch on bob\'s dir, nothing read there', async t => {
  // The walk's last look (the history of a/la) is where the swap lands: alice's `a` leaves, bob's dir takes its name.
  const swap = swapOnLook(join('root', 'a', 'la'), [[join('root', 'a'), 'a.old'], [join('root', 'b'), join('root', 'a')]])
  const f = await watchFixture(t, { mode: 'system', wrapFs: swap.wrapFs })
  const { root, theirs } = tree(t)
  swap.arm(join(root, '..'))
  // bob's dir as it will be named: a dir `la` of bob's in it, with a `.nextflow` (alice's walk never saw them)
  mkdirSync(join(theirs, 'la', '.nextflow'), { recursive: true })
  for (const p of [join(theirs, 'la'), join(theirs, 'la', '.nextflow')]) chownSync(p, bob!.uid, bob!.gid)
  const app = await watchApp(t, f, { alice: alice!.uid, bob: bob!.uid })
  const res = await app.inject({ method: 'POST', url: '/api/v1/watches', headers: as('alice'), payload: { root, depth: 2 } })
  t.equal(res.statusCode, 201, 'her watch is added')
  await waitFor('the walk', () => (f.service.summary().walking ?? []).length === 0)
  await f.service.watcher.idle()
  t.ok(swap.swapped(), 'the swap happened after the walk looked at a/la')
  t.ok(inotifyOn(process.pid, root), 'her root is watched')
  for (const d of [join(root, 'a'), join(root, 'a', 'la'), join(root, 'a', 'la', '.nextflow')]) {
    t.notOk(inotifyOn(process.pid, d), `no inotify watch on bob's ${d.slice(root.length + 1)}`)
  }
  t.equal(f.service.watcher.groups().find(g => g.key === `root:${root}`)?.launchDirs, 0, 'bob\'s la is not read as a launch dir of hers')
})

t.test('a new dir found while watched, swapped for bob\'s between its walk and its watches: the watches are on what the walk checked', async t => {
  // A dir found while watched is watched through the fds its walk opened (walk.ts KeptDir): a swap after the walk's
  // check must not put a watch on a dir of bob's, nor let his dir be read as her launch dir.
  const swap = swapOnLook(join('root', 'n', 'la'), [[join('root', 'n'), 'n.old'], ['bn', join('root', 'n')]])
  const f = await watchFixture(t, { mode: 'system', wrapFs: swap.wrapFs })
  const { root } = tree(t)
  const base = join(root, '..')
  swap.arm(base)
  const app = await watchApp(t, f, { alice: alice!.uid, bob: bob!.uid })
  const res = await app.inject({ method: 'POST', url: '/api/v1/watches', headers: as('alice'), payload: { root, depth: 2 } })
  t.equal(res.statusCode, 201, 'her watch is added')
  await waitFor('the walk', () => (f.service.summary().walking ?? []).length === 0)
  const group = (): { launchDirs: number } | undefined => f.service.watcher.groups().find(g => g.key === `root:${root}`)
  const before = group()?.launchDirs ?? -1
  // bob's dir, to be swapped in: his `la` with a `.nextflow` and a history with a running line
  const bn = join(base, 'bn')
  mkdirSync(join(bn, 'la', '.nextflow'), { recursive: true })
  writeFileSync(join(bn, 'la', '.nextflow', 'history'), `${new Date().toISOString().slice(0, 19).replace('T', ' ')}\t-\tbobs_run\t-\tabc1234567\t0b0b0b0b-0000-4000-8000-00000000000b\tnextflow run x\n`)
  for (const p of [bn, join(bn, 'la'), join(bn, 'la', '.nextflow'), join(bn, 'la', '.nextflow', 'history')]) chownSync(p, bob!.uid, bob!.gid)
  chmodSync(bn, 0o755)
  // her new dir n with her launch dir la, moved into her root while watched
  const n = join(base, 'n')
  mkdirSync(join(n, 'la', '.nextflow'), { recursive: true })
  writeFileSync(join(n, 'la', '.nextflow', 'history'), '')
  for (const p of [n, join(n, 'la'), join(n, 'la', '.nextflow'), join(n, 'la', '.nextflow', 'history')]) chownSync(p, alice!.uid, alice!.gid)
  const bobs: string[] = []
  const off = f.service.watcher.on(e => { if (e.type === 'run-started' && e.record.runName === 'bobs_run') bobs.push(e.launchDir) })
  t.teardown(off)
  renameSync(n, join(root, 'n'))
  await waitFor('the swap', () => swap.swapped(), 10_000)
  await new Promise(resolve => setTimeout(resolve, 300))
  await f.service.watcher.idle()
  for (const d of [join(root, 'n'), join(root, 'n', 'la'), join(root, 'n', 'la', '.nextflow')]) {
    t.notOk(inotifyOn(process.pid, d), `no inotify watch on bob's ${d.slice(root.length + 1)}`)
  }
  t.ok(inotifyOn(process.pid, join(base, 'n.old', 'la')), 'the watch is on her la, where it went')
  t.ok((group()?.launchDirs ?? 0) <= before + 1, 'at most her own la counted, under the name it had')
  // her watch's events on her la (renamed away) lead to reads by the name, which is bob's dir now: refused, not read
  writeFileSync(join(base, 'n.old', 'la', '.nextflow', 'history'), '')
  await new Promise(resolve => setTimeout(resolve, 300))
  await f.service.watcher.idle()
  t.same(bobs, [], 'no line of bob\'s read')
})
