// The checks a poller makes of a watch root's path before it claims, walks or keeps polling it (root-check.ts): real
// dirs, real symlinks, real owners (chown needs root; skipped without).
import t from 'tap'
import { chownSync, mkdirSync, renameSync, rmSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { checkRootPath } from '../../daemon/watch/root-check.js'
import { tempDir } from '../store/helpers.js'
import { requireRoot } from '../helpers/requires.js'

requireRoot(t)

t.test('a root is refused when its path is not the dir that was added', async t => {
  const base = tempDir(t)
  const parent = join(base, 'alice')
  const root = join(parent, 'a', 'proj')
  const vault = join(base, 'vault')
  mkdirSync(root, { recursive: true })
  mkdirSync(join(vault, 'proj'), { recursive: true })
  for (const d of [parent, join(parent, 'a'), root, join(vault, 'proj')]) chownSync(d, 1001, 1001)

  t.equal(await checkRootPath(root, 1001), null, 'her own dir, no symlink: polled')
  t.equal(await checkRootPath(root, null), null, 'an admin\'s root: any owner')
  t.match(await checkRootPath(root, 1002), { unsafe: true }, 'another user\'s dir now')
  t.match(await checkRootPath(join(base, 'gone'), 1001), { unsafe: false }, 'not there (not mounted here): not seen, not unsafe')

  // A component swapped for a symlink to a dir she owns behind one she cannot read.
  renameSync(join(parent, 'a'), join(parent, 'a.old'))
  symlinkSync(vault, join(parent, 'a'))
  t.match(await checkRootPath(root, 1001), { unsafe: true, reason: /component .* symlink/ }, 'a component is a symlink')
  t.match(await checkRootPath(root, null), { unsafe: true }, 'for an admin\'s root too')
  rmSync(join(parent, 'a'))
  // The root itself a symlink.
  mkdirSync(join(parent, 'a'))
  symlinkSync(join(vault, 'proj'), root)
  t.match(await checkRootPath(root, 1001), { unsafe: true, reason: /root is a symlink/ })
})
