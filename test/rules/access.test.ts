import t from 'tap'
import { can, roleIn, rolesOf, type Action } from '../../daemon/rules/access.js'
import { ROLES, type Role, type Workspace } from '../../daemon/types.js'
import { withRole } from '../../daemon/store/store-format.js'

const ACTIONS: Action[] = ['secrets.read', 'secrets.write', 'runs.launch', 'members.manage', 'workspaces.manage']

// SPEC section 4, written out as a table: role -> the actions it allows in its workspace (for a non-admin user).
const MATRIX: Record<Role, Action[]> = {
  owner: ['secrets.read', 'secrets.write', 'runs.launch', 'members.manage'],
  admin: ['secrets.read', 'secrets.write', 'runs.launch', 'members.manage'],
  maintain: ['secrets.read', 'secrets.write', 'runs.launch'],
  launch: ['secrets.read', 'runs.launch'],
  connect: ['secrets.read'],
  view: ['secrets.read']
}

function ws (members: Record<string, Role>, groups: Record<string, Role> = {}): Workspace {
  return { name: 'genomics', members, groups, createdAt: '', createdBy: 'root', version: 1 }
}

t.test('every role against every action, by user name and by group', async t => {
  for (const role of ROLES) {
    for (const action of ACTIONS) {
      const expected = MATRIX[role].includes(action)
      const byName = { user: 'alice', groups: ['alice'], isAdmin: false }
      t.equal(can(byName, action, ws({ alice: role })), expected, `${role} by name: ${action}`)
      const byGroup = { user: 'alice', groups: ['alice', 'lab'], isAdmin: false }
      t.equal(can(byGroup, action, ws({}, { lab: role })), expected, `${role} by group: ${action}`)
    }
  }
})

t.test('non-members and admins', async t => {
  const stranger = { user: 'bob', groups: ['bob'], isAdmin: false }
  for (const action of ACTIONS) t.equal(can(stranger, action, ws({ alice: 'owner' })), false, `stranger: ${action}`)
  const admin = { user: 'root', groups: ['root'], isAdmin: true }
  t.equal(can(admin, 'workspaces.manage', null), true)
  t.equal(can(admin, 'members.manage', ws({})), true)
  // Admins administer; using a workspace's secrets needs a role in it.
  t.equal(can(admin, 'runs.launch', ws({})), false)
  t.equal(can(admin, 'secrets.write', ws({})), false)
  t.equal(can(stranger, 'secrets.read', null), false)
})

t.test('the higher role wins across name and groups', async t => {
  const alice = { user: 'alice', groups: ['alice', 'lab', 'core'] }
  t.equal(roleIn(alice, ws({ alice: 'view' }, { lab: 'launch', core: 'maintain' })), 'maintain')
  t.equal(roleIn(alice, ws({ alice: 'owner' }, { lab: 'view' })), 'owner')
  t.equal(roleIn({ user: 'carol', groups: [] }, ws({ alice: 'owner' })), null)
  t.same(rolesOf(alice, [ws({ alice: 'view' }), { ...ws({}), name: 'other' }]), { genomics: 'view' })
})

t.test('names that are Object.prototype\'s: no role from the prototype, a real role kept', async t => {
  const empty = ws({}, {})
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf']) {
    t.equal(roleIn({ user: name, groups: [name] }, empty), null, `${name}: no role`)
    t.equal(can({ user: name, groups: [name], isAdmin: false }, 'secrets.read', empty), false, `${name}: no access`)
  }
  // Added through the stores' own rule (withRole), then read back through JSON, as the file and etcd stores keep it.
  let w = withRole(empty, 'members', '__proto__', 'launch')
  w = withRole(w, 'groups', 'constructor', 'view')
  const kept = JSON.parse(JSON.stringify(w)) as Workspace
  t.equal(roleIn({ user: '__proto__', groups: [] }, kept), 'launch', 'a member named __proto__ has the role given')
  t.equal(roleIn({ user: 'x', groups: ['constructor'] }, kept), 'view', 'a group named constructor too')
  t.same(Object.keys(kept.members), ['__proto__'], 'as an own entry')
  t.equal(Object.getPrototypeOf(w.members), Object.prototype, 'the prototype untouched')
  t.same(withRole(kept, 'members', '__proto__', null).members, {}, 'and removed again')
})
