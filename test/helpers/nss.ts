// A table in place of NSS for UserDirectory (daemon/identity/users.ts), so route tests know alice, bob and carol
// without root and without accounts on the machine. Real NSS stays under test in test/daemon/identity.test.ts and in
// every test that runs something as another user (those need the real accounts anyway).
import type { GroupEntry, PasswdEntry } from '../../daemon/os/native.js'
import type { NssLookups } from '../../daemon/identity/users.js'

export interface NssTable { users: PasswdEntry[], groups: GroupEntry[] }

const person = (name: string, uid: number): PasswdEntry => ({ name, uid, gid: uid, home: `/home/${name}`, shell: '/bin/bash' })

/** root and the three test users, each with a group of their own, and genomics holding alice (as users.ts makes them). */
export const TEST_NSS: NssTable = {
  users: [person('root', 0), person('alice', 2001), person('bob', 2002), person('carol', 2003)],
  groups: [
    { name: 'root', gid: 0, members: [] },
    { name: 'alice', gid: 2001, members: [] },
    { name: 'bob', gid: 2002, members: [] },
    { name: 'carol', gid: 2003, members: [] },
    { name: 'genomics', gid: 2100, members: ['alice'] }
  ]
}

/** Lookups answered from `table`, with getgrouplist's rule: the primary gid first, then every group naming the user. */
export function tableNss (table: NssTable = TEST_NSS): NssLookups {
  return {
    getpwuid: uid => table.users.find(u => u.uid === uid) ?? null,
    getpwnam: name => table.users.find(u => u.name === name) ?? null,
    getgrgid: gid => table.groups.find(g => g.gid === gid) ?? null,
    getgrnam: name => table.groups.find(g => g.name === name) ?? null,
    getgrouplist: (name, gid) => [gid, ...table.groups.filter(g => g.gid !== gid && g.members.includes(name)).map(g => g.gid)]
  }
}
