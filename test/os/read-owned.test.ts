// Who else could have written a launch-dir file (read-owned.ts): the pure rule as a table, the user-private-group
// check against real NSS entries, and a read through a `.nextflow` held open by fd.
import t from 'tap'
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { dirWritableByOthers, privateGroupOf, readOwned, writableByOthers } from '../../daemon/os/read-owned.js'
import { readHistoryTail } from '../../daemon/nextflow/history-file.js'
import { ensureUsers } from '../helpers/users.js'

const [alice, bob] = ensureUsers(['alice', 'bob'])

t.test('writableByOthers / dirWritableByOthers (pure, with a stated private-group answer)', async t => {
  const priv = (_uid: number, gid: number): boolean => gid === 1001
  const table: Array<[string, number, number, boolean, boolean]> = [
    // name, mode, gid, file: writable by others, dir: writable by others
    ['0644', 0o100644, 1004, false, false],
    ['0664 in a shared group', 0o100664, 1004, true, true],
    ['0664 in the user\'s private group', 0o100664, 1001, false, false],
    ['0646 world-writable', 0o100646, 1001, true, true],
    ['1777 sticky dir (/tmp)', 0o41777, 0, true, false],
    ['3775 setgid+sticky shared dir', 0o43775, 1004, true, false],
    ['2775 setgid shared dir', 0o42775, 1004, true, true]
  ]
  for (const [name, mode, gid, file, dir] of table) {
    t.equal(writableByOthers({ mode, gid }, 1001, priv), file, `${name}: file`)
    t.equal(dirWritableByOthers({ mode, gid }, 1001, priv), dir, `${name}: dir`)
  }
})

t.test('privateGroupOf: a group named as the user, their primary, with no other member', async t => {
  t.equal(privateGroupOf(alice!.uid, alice!.gid), true, 'alice:alice')
  t.equal(privateGroupOf(bob!.uid, alice!.gid), false, 'alice\'s group is not bob\'s')
  const genomics = Number((await import('node:child_process')).execFileSync('getent', ['group', 'genomics'], { encoding: 'utf8' }).split(':')[2])
  t.equal(privateGroupOf(alice!.uid, genomics), false, 'a shared group')
  t.equal(privateGroupOf(0, 0), true)
})

t.test('reads go through the dir held open: a `.nextflow` symlink is not followed, ownership and trust are reported', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-read-owned-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const elsewhere = join(dir, 'elsewhere')
  mkdirSync(elsewhere)
  writeFileSync(join(elsewhere, 'history'), '2026-12-02 10:00:00\t-\tsome_run\t-\tabc\t0b0e5f0e-3c2a-4f7e-9f2a-1d2c3b4a5f6e\tnextflow run x\n')
  const ld = join(dir, 'ld')
  mkdirSync(ld)
  symlinkSync(elsewhere, join(ld, '.nextflow'))
  t.equal(await readHistoryTail(ld, 0), null, 'a .nextflow symlink leads nowhere')
  const real = join(dir, 'real')
  mkdirSync(join(real, '.nextflow'), { recursive: true })
  writeFileSync(join(real, '.nextflow', 'history'), '')
  chownSync(join(real, '.nextflow'), alice!.uid, alice!.gid)
  chownSync(join(real, '.nextflow', 'history'), alice!.uid, alice!.gid)
  t.same((await readHistoryTail(real, alice!.uid))?.trusted, true)
  t.equal(await readHistoryTail(real, bob!.uid), null, 'not bob\'s')
  chmodSync(join(real, '.nextflow', 'history'), 0o666)
  t.same((await readHistoryTail(real, alice!.uid))?.trusted, false, 'world-writable: read, but not trusted')
  chmodSync(join(real, '.nextflow', 'history'), 0o644)
  const { linkSync } = await import('node:fs')
  linkSync(join(real, '.nextflow', 'history'), join(dir, 'second-link'))
  t.same((await readOwned(join(real, '.nextflow', 'history'), alice!.uid))?.trusted, false, 'a second hard link: not trusted')
})
