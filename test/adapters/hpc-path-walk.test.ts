// The walk the hpc target's two trusted-path checks share (adapters/hpc/path-walk.ts), on a fake file system: which
// components are visited and in what order, `last`, `..`, symlinks relative and absolute, a missing component, the
// hop limit. The checks themselves are tested where they live (hpc-root.test.ts, hpc-per-user.test.ts).
import t from 'tap'
import { pathComponents, walkComponents, type Component } from '../../adapters/hpc/path-walk.js'

/** A tree as a table: a path is a dir (true) or a symlink (its target); anything else is missing. */
function walkOf (tree: Record<string, true | string>): { visits: string[], walk: (path: string) => Promise<string | null> } {
  const visits: string[] = []
  const walk = async (path: string): Promise<string | null> => await walkComponents(path, {
    visit: async (p, last): Promise<Component> => {
      visits.push(last ? `${p}$` : p)
      const e = tree[p]
      return e === undefined ? 'missing' : e === true ? 'dir' : 'symlink'
    },
    readlink: async p => tree[p] as string,
    tooManySymlinks: () => new Error('too many symlinks')
  })
  return { visits, walk }
}

t.test('pathComponents drops empty components and ., keeps ..', async t => {
  t.same(pathComponents('//a/./b//../c/'), ['a', 'b', '..', 'c'])
  t.same(pathComponents('/'), [])
})

t.test('every component visited from /, in order, the last one marked', async t => {
  const { visits, walk } = walkOf({ '/a': true, '/a/b': true, '/a/c': true })
  t.equal(await walk('/a/./b/../c'), '/a/c')
  t.same(visits, ['/a', '/a/b', '/a/c$'], '.. leaves the dir reached without a visit')
  const up = walkOf({ '/a': true })
  t.equal(await up.walk('/../../a'), '/a', '.. never goes above /')
  t.equal(await walkOf({}).walk('/'), '/', '/ itself: nothing to visit')
})

t.test('a symlink is walked by its target, relative from its dir, absolute from /', async t => {
  const tree = { '/a': true, '/a/rel': 'x/../y', '/a/x': true, '/a/y': true, '/a/abs': '/z', '/z': true, '/z/last': true } as const
  const rel = walkOf(tree)
  t.equal(await rel.walk('/a/rel'), '/a/y')
  t.same(rel.visits, ['/a', '/a/rel$', '/a/x', '/a/y$'], 'the link visited, then its target\'s components')
  const abs = walkOf(tree)
  t.equal(await abs.walk('/a/abs/last'), '/z/last')
  t.same(abs.visits, ['/a', '/a/abs', '/z', '/z/last$'])
})

t.test('a missing component ends the walk with null', async t => {
  const { visits, walk } = walkOf({ '/a': true })
  t.equal(await walk('/a/b/c'), null)
  t.same(visits, ['/a', '/a/b'], 'nothing visited after it')
})

t.test('40 symlinks are followed, the 41st is refused; a visit\'s refusal ends the walk', async t => {
  const chain: Record<string, true | string> = { '/end': true }
  for (let i = 0; i < 40; i++) chain[`/l${i}`] = i === 39 ? '/end' : `/l${i + 1}`
  t.equal(await walkOf(chain).walk('/l0'), '/end', '40 hops')
  const loop = walkOf({ '/l': '/l' })
  await t.rejects(loop.walk('/l'), { message: 'too many symlinks' })
  t.equal(loop.visits.length, 41, 'the 41st symlink is visited (its owner checked) before the limit refuses it')
  await t.rejects(walkComponents('/a/b', {
    visit: async p => { if (p === '/a') throw new Error('refused'); return 'dir' },
    readlink: async () => { throw new Error('not reached') },
    tooManySymlinks: () => new Error('not reached')
  }), { message: 'refused' })
})
