// The workspace rules both stores share (store-format.ts: the file store and the etcd one call them), as tables:
// pure, no store.
import t from 'tap'
import { guardMemberName, guardWorkspaceName, withRole } from '../../daemon/store/store-format.js'
import type { Workspace } from '../../daemon/types.js'

const ws: Workspace = { name: 'lab', members: { alice: 'owner' }, groups: { bio: 'view' }, createdAt: '2026-12-03T00:00:00.000Z', createdBy: 'root', version: 3 }

t.test('withRole', async t => {
  const before = structuredClone(ws)
  t.same(withRole(ws, 'members', 'bob', 'launch'), { ...ws, members: { alice: 'owner', bob: 'launch' }, version: 4 }, 'a member added, one version on')
  t.same(withRole(ws, 'members', 'alice', 'view').members, { alice: 'view' }, 'a role changed')
  t.same(withRole(ws, 'groups', 'bio', null), { ...ws, groups: {}, version: 4 }, 'a group taken away')
  t.throws(() => withRole(ws, 'members', 'bio', null), { code: 'NFS_ERR_MEMBER_NOT_FOUND' }, 'a group\'s name is not a member')
  t.throws(() => withRole(ws, 'groups', 'toString', null), { code: 'NFS_ERR_MEMBER_NOT_FOUND' }, 'own keys only')
  t.same(ws, before, 'the record passed in is left as it was')
})

t.test('the names a store takes', async t => {
  for (const name of ['lab', 'ünï', 'x'.repeat(256)]) t.doesNotThrow(() => { guardWorkspaceName(name) }, name)
  for (const name of ['', 'a b', 'a/b', 'a\0', 'x'.repeat(257), 42 as unknown as string]) {
    t.throws(() => { guardWorkspaceName(name) }, { code: 'NFS_ERR_BAD_REQUEST' }, JSON.stringify(name))
  }
  for (const who of ['bob', 'a b', 'uid:1001']) t.doesNotThrow(() => { guardMemberName(who) }, who)
  for (const who of ['', 'a\0b', null as unknown as string]) t.throws(() => { guardMemberName(who) }, { code: 'NFS_ERR_BAD_REQUEST' }, JSON.stringify(who))
})
