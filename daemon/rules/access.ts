// The role matrix of SPEC section 4, as pure functions. Every route asks `can()` and nothing else decides access.
import { ROLES, type Caller, type Role, type Workspace } from '../types.js'

export const PERSONAL = 'personal'

export type Action =
  | 'secrets.read'      // list workspace secret metadata, resolve
  | 'secrets.write'     // create, update, delete workspace secrets
  | 'runs.launch'       // run, arm, launch, auto-runs with the workspace's secrets
  | 'members.manage'    // members and group mappings
  | 'workspaces.manage' // create and delete workspaces

const RANK: Record<Role, number> = { owner: 6, admin: 5, maintain: 4, launch: 3, connect: 2, view: 1 }

const NEEDS: Record<Exclude<Action, 'workspaces.manage'>, Role> = {
  'secrets.read': 'view',
  'secrets.write': 'maintain',
  'runs.launch': 'launch',
  'members.manage': 'admin'
}

export function isRole (r: unknown): r is Role {
  return typeof r === 'string' && (ROLES as readonly string[]).includes(r)
}

export function higher (a: Role | null, b: Role | null): Role | null {
  if (a === null) return b
  if (b === null) return a
  return RANK[a] >= RANK[b] ? a : b
}

/** The caller's role in a workspace: by user name or any Unix group they are in; the higher role wins. */
export function roleIn (caller: Pick<Caller, 'user' | 'groups'>, ws: Pick<Workspace, 'members' | 'groups'>): Role | null {
  let role: Role | null = own(ws.members, caller.user)
  for (const g of caller.groups) role = higher(role, own(ws.groups, g))
  return role
}

// A name's own entry only: a user or group called `constructor` or `toString` must not read Object.prototype's.
function own (map: Record<string, Role>, name: string): Role | null {
  return Object.hasOwn(map, name) && isRole(map[name]) ? map[name] : null
}

/**
 * May the caller do `action` in `ws`? System admins manage workspaces and members everywhere, but a system admin
 * gets no workspace secrets for runs and no write access to them without a role: admins administer, members use.
 */
export function can (caller: Pick<Caller, 'user' | 'groups' | 'isAdmin'>, action: Action, ws: Pick<Workspace, 'members' | 'groups'> | null): boolean {
  if (action === 'workspaces.manage') return caller.isAdmin
  if (ws === null) return false
  if (action === 'members.manage' && caller.isAdmin) return true
  const role = roleIn(caller, ws)
  return role !== null && RANK[role] >= RANK[NEEDS[action]]
}

/** Roles per workspace, for whoami. */
export function rolesOf (caller: Pick<Caller, 'user' | 'groups'>, workspaces: Workspace[]): Record<string, Role> {
  const out: Record<string, Role> = {}
  for (const ws of workspaces) {
    const r = roleIn(caller, ws)
    if (r !== null) out[ws.name] = r
  }
  return out
}
