// nf-secrets workspaces list|create|delete|members|member-set|member-remove|group-set|group-remove.
import type { Role } from '../types.js'
import type { DeletedWorkspace, WorkspaceView } from '../contract/workspaces.js'
import type { Command, CommandContext } from './args.js'
import { renderTable, safeText, shortTime } from './output.js'

export function workspacesTable (rows: WorkspaceView[]): string {
  if (rows.length === 0) return 'No workspaces.\n'
  return renderTable(
    ['NAME', 'YOUR ROLE', 'MEMBERS', 'GROUPS', 'CREATED', 'BY'],
    rows.map(w => [w.name, w.role, Object.keys(w.members).length, Object.keys(w.groups).length, shortTime(w.createdAt), w.createdBy])
  )
}

/** Users and Unix groups of a workspace with their roles, users first, each sorted by name. */
export function membersTable (ws: WorkspaceView): string {
  const byName = (a: [string, Role], b: [string, Role]): number => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0
  const rows = [
    ...Object.entries(ws.members).sort(byName).map(([n, r]) => ['user', n, r]),
    ...Object.entries(ws.groups).sort(byName).map(([n, r]) => ['group', n, r])
  ]
  if (rows.length === 0) return `Workspace ${safeText(ws.name)} has no members.\n`
  return renderTable(['KIND', 'NAME', 'ROLE'], rows)
}

const seg = encodeURIComponent

/** A member or group change: PUT with a role, DELETE without; prints the workspace's members afterwards. */
function change (kind: 'members' | 'groups', method: 'PUT' | 'DELETE') {
  return async (ctx: CommandContext): Promise<number> => {
    const [ws, who, role] = ctx.args as [string, string, string | undefined]
    const updated = await ctx.client().request<WorkspaceView>(method, `/workspaces/${seg(ws)}/${kind}/${seg(who)}`, method === 'PUT' ? { body: { role } } : {})
    ctx.out.result(updated, () => membersTable(updated))
    return 0
  }
}

export const workspacesCommands: Command[] = [
  {
    path: ['workspaces', 'list'],
    usage: '',
    summary: 'the workspaces you belong to (all of them for system admins)',
    positionals: [0, 0],
    async run (ctx) {
      const rows = await ctx.client().request<WorkspaceView[]>('GET', '/workspaces')
      ctx.out.result(rows, () => workspacesTable(rows))
      return 0
    }
  },
  {
    path: ['workspaces', 'create'],
    usage: 'W [--owner USER]',
    summary: 'create a workspace (system admins)',
    options: { owner: { type: 'string', description: 'make USER its owner at once' } },
    positionals: [1, 1],
    async run (ctx) {
      const owner = ctx.options.owner
      const ws = await ctx.client().request<WorkspaceView>('POST', '/workspaces', { body: { name: ctx.args[0], ...(typeof owner === 'string' ? { owner } : {}) } })
      ctx.out.result(ws, () => `Created workspace ${safeText(ws.name)}${typeof owner === 'string' ? ` owned by ${safeText(owner)}` : ''}.`)
      return 0
    }
  },
  {
    path: ['workspaces', 'delete'],
    usage: 'W',
    summary: 'delete a workspace and its secrets (system admins)',
    positionals: [1, 1],
    async run (ctx) {
      const res = await ctx.client().request<DeletedWorkspace>('DELETE', `/workspaces/${seg(ctx.args[0]!)}`)
      ctx.out.result(res, () => `Deleted workspace ${safeText(res.deleted)}.`)
      return 0
    }
  },
  {
    path: ['workspaces', 'members'],
    usage: 'W',
    summary: 'the users and Unix groups of a workspace with their roles',
    positionals: [1, 1],
    async run (ctx) {
      const ws = await ctx.client().request<WorkspaceView>('GET', `/workspaces/${seg(ctx.args[0]!)}`)
      ctx.out.result({ name: ws.name, members: ws.members, groups: ws.groups }, () => membersTable(ws))
      return 0
    }
  },
  {
    path: ['workspaces', 'member-set'],
    usage: 'W USER ROLE',
    summary: 'give USER a role in W (owner, admin, maintain, launch, connect, view)',
    positionals: [3, 3],
    run: change('members', 'PUT')
  },
  {
    path: ['workspaces', 'member-remove'],
    usage: 'W USER',
    summary: 'remove USER from W',
    positionals: [2, 2],
    run: change('members', 'DELETE')
  },
  {
    path: ['workspaces', 'group-set'],
    usage: 'W GROUP ROLE',
    summary: 'give every member of the Unix group GROUP a role in W',
    positionals: [3, 3],
    run: change('groups', 'PUT')
  },
  {
    path: ['workspaces', 'group-remove'],
    usage: 'W GROUP',
    summary: 'remove the mapping of the Unix group GROUP from W',
    positionals: [2, 2],
    run: change('groups', 'DELETE')
  }
]
