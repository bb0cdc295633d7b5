// UserDirectory's own rules over a table in place of NSS (no root, no accounts): callers and their groups, admins,
// and a cache that answers from memory for cacheMs of the injected clock, then asks NSS again. Real NSS: identity.test.ts.
import t from 'tap'
import { UserDirectory } from '../../daemon/identity/users.js'
import { TEST_NSS, tableNss, type NssTable } from '../helpers/nss.js'

t.test('callers, groups and admins from the lookups handed in', async t => {
  const dir = new UserDirectory({ mode: 'system', adminGroup: 'genomics', daemonUid: 0, nss: tableNss() })
  const a = dir.callerFor({ pid: 7, uid: 2001, gid: 2001 })
  t.same([a.user, a.gid, a.groups, a.gids, a.isAdmin], ['alice', 2001, ['alice', 'genomics'], [2001, 2100], true])
  t.equal(dir.callerFor({ pid: 7, uid: 2002, gid: 2002 }).isAdmin, false)
  t.equal(dir.callerFor({ pid: 7, uid: 9999, gid: 9999 }).user, 'uid:9999', 'a uid the table lacks is named by number')
  t.equal(dir.userByName('carol')?.uid, 2003)
  t.equal(dir.userByName('mallory'), null)
  t.same([dir.groupExists('genomics'), dir.groupExists('nosuchgroup')], [true, false])
  t.throws(() => dir.callerForUid(9999), { code: 'NFS_ERR_UNKNOWN_USER' })
})

t.test('lookups are cached for cacheMs of the injected clock, then made again', async t => {
  const table: NssTable = structuredClone(TEST_NSS)
  let now = 1_000_000
  let asked = 0
  const nss = tableNss(table)
  const counted = { ...nss, getpwuid: (uid: number) => { asked++; return nss.getpwuid(uid) } }
  const dir = new UserDirectory({ mode: 'system', adminGroup: 'admins', daemonUid: 0, cacheMs: 30_000, nss: counted, now: () => now })
  t.equal(dir.callerFor({ pid: 1, uid: 2002, gid: 2002 }).isAdmin, false)
  table.groups.push({ name: 'admins', gid: 3000, members: ['bob'] })
  now += 29_999
  t.equal(dir.callerFor({ pid: 1, uid: 2002, gid: 2002 }).isAdmin, false, 'within cacheMs the cached groups answer')
  t.equal(asked, 1)
  now += 1
  t.equal(dir.callerFor({ pid: 1, uid: 2002, gid: 2002 }).isAdmin, true, 'after it, the new group shows')
  t.equal(asked, 2)
})
