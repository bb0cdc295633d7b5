// The walk under a held root descends by fd (issue 16, after dd475c2): each dir is opened once, by its name from its
// parent's fd, and closed once its subtree is done; a bounded number are open at once, none is left open; and a dir
// swapped for a symlink after its parent was listed is refused by that open, never followed.
import t from 'tap'
import { mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { join, relative } from 'node:path'
import { HeldRoot, openRoot } from '../../daemon/watch/held-root.js'
import { walkTree, type WalkDir, type WalkFs } from '../../daemon/watch/walk.js'
import type { Teardown } from '../helpers/runs.js'

function tempDir (t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-walkfd-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function launchDir (dir: string): void {
  mkdirSync(join(dir, '.nextflow'), { recursive: true })
  writeFileSync(join(dir, '.nextflow', 'history'), '2026-01-01 10:00:00\t1s\told_run\tOK\tabc\t0b0b0b0b-0000-4000-8000-000000000000\tnextflow run x\n')
}

async function hold (t: Teardown, root: string): Promise<HeldRoot> {
  const held = await openRoot(root, userInfo().uid)
  if (!(held instanceof HeldRoot)) throw new Error(`the root did not open: ${held.reason}`)
  t.teardown(async () => await held.close())
  return held
}

const openFds = (): number => readdirSync('/proc/self/fd').length

t.test('each dir is opened once from its parent\'s fd; fds bounded while walking, all closed after', async t => {
  const root = tempDir(t)
  for (let p = 0; p < 4; p++) for (let l = 0; l < 40; l++) launchDir(join(root, `p${p}`, `g${l % 2}`, `l${l}`))
  const held = await hold(t, root)
  const inner = held.fs()
  const holds = new Map<string, number>()
  const fromParent: boolean[] = []
  const before = openFds()
  let most = 0
  const fs: WalkFs = {
    readdir: async (dir, at) => { most = Math.max(most, openFds() - before); return await inner.readdir(dir, at) },
    lstat: async (path, at) => await inner.lstat(path, at),
    hold: async (path: string, parent?: WalkDir) => {
      holds.set(path, (holds.get(path) ?? 0) + 1)
      if (path !== root) fromParent.push(parent !== undefined)
      return await inner.hold!(path, parent)
    }
  }
  t.type(inner.hold, 'function', 'the held root\'s fs holds dirs for the walk')
  const got = await walkTree(root, 0, 3, fs)
  t.equal(got.launchDirs.length, 160, 'every launch dir found')
  t.equal(got.dirs.length, 1 + 4 + 8 + 160)
  t.same([...holds.values()].filter(n => n !== 1), [], 'no dir opened twice')
  t.equal(holds.size, 1 + 4 + 8 + 160 + 160, 'each tree dir and each .nextflow opened once')
  t.ok(fromParent.length > 0 && fromParent.every(Boolean), 'every dir below the start opened from its parent\'s fd')
  // 16 a level at most (4 levels), each with a .nextflow and readdir's own open while looked at
  t.ok(most <= 16 * 4 + 2 * 16, `${most} fds open at most during the walk`)
  t.equal(openFds(), before, 'no fd left open after the walk')
})

t.test('a dir swapped for a symlink after its parent was listed is not walked through', async t => {
  const base = tempDir(t)
  const root = join(base, 'root')
  const mine = join(root, 'p', 'l1')
  launchDir(mine)
  launchDir(join(root, 'p', 'l2'))
  const vault = join(base, 'vault', 'l9')
  launchDir(vault)
  mkdirSync(join(vault, 'deeper'))
  const held = await hold(t, root)
  const inner = held.fs()
  const fs: WalkFs = {
    ...inner,
    readdir: async (dir, at) => {
      const entries = await inner.readdir(dir, at)
      // listed as a dir; by the time the walk opens it, it is a symlink into the vault
      if (dir === join(root, 'p')) {
        renameSync(mine, `${mine}.old`)
        symlinkSync(vault, mine)
      }
      return entries
    }
  }
  const got = await walkTree(root, 0, 3, fs)
  t.same(got.launchDirs.map(d => relative(root, d)), ['p/l2'], 'only the real launch dir')
  t.notOk(got.dirs.some(d => d.path.startsWith(`${mine}/`)), 'nothing behind the symlink was walked')
})
