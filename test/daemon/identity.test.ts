import t from 'tap'
import { UserDirectory } from '../../daemon/identity/users.js'
import { requireUsers } from '../helpers/requires.js'

const [alice, bob] = requireUsers(t, ['alice', 'bob'])

t.test('system mode: users and all their groups through NSS, admins by uid 0 or adminGroup', async t => {
  const dir = new UserDirectory({ mode: 'system', adminGroup: 'genomics', daemonUid: 0 })
  const a = dir.callerFor({ pid: 42, uid: alice!.uid, gid: alice!.gid })
  t.equal(a.user, 'alice')
  t.equal(a.pid, 42)
  t.ok(a.groups.includes('alice') && a.groups.includes('genomics'), 'supplementary groups are there')
  t.equal(a.isAdmin, true, 'a member of adminGroup is an admin')
  const b = dir.callerFor({ pid: 1, uid: bob!.uid, gid: bob!.gid })
  t.equal(b.isAdmin, false)
  t.equal(dir.callerFor({ pid: 1, uid: 0, gid: 0 }).isAdmin, true)
  t.equal(dir.callerFor({ pid: 1, uid: 54321, gid: 54321 }).user, 'uid:54321', 'a uid NSS does not know is still identified')
  t.equal(dir.userByName('alice')?.uid, alice!.uid)
  t.equal(dir.userByName('no-such-user-x'), null)
  t.ok(dir.groupExists('genomics'))
  t.notOk(dir.groupExists('no-such-group-x'))
})

t.test('user mode serves only the daemon\'s own uid', async t => {
  const dir = new UserDirectory({ mode: 'user', adminGroup: 'x', daemonUid: alice!.uid })
  t.equal(dir.callerFor({ pid: 1, uid: alice!.uid, gid: alice!.gid }).isAdmin, true)
  t.throws(() => dir.callerFor({ pid: 1, uid: bob!.uid, gid: bob!.gid }), { code: 'NFS_ERR_PEER_REFUSED' })
  t.throws(() => dir.callerFor({ pid: 1, uid: 0, gid: 0 }), { code: 'NFS_ERR_PEER_REFUSED' }, 'root too')
})
