// /workspaces: create and delete (system admins), members and Unix-group mappings (workspace owners and admins).
import type { FastifyRequest } from 'fastify'
import { can, isRole, PERSONAL, roleIn } from '../rules/access.js'
import { nfsError } from '../errors.js'
import { checkWorkspaceName } from '../rules/validate.js'
import type { Role, Workspace } from '../types.js'
import { CreateWorkspaceBody, GroupParams, MemberParams, RoleBody, WorkspaceParams, type DeletedWorkspace, type WorkspaceView } from '../contract/workspaces.js'
import type { SecretsStore } from '../store/secrets-store.js'
import type { AuditLog } from '../store/audit-log.js'
import type { UserDirectory } from '../identity/users.js'
import type { ApiPlugin } from './type-provider.js'

// Unix user and group names: what useradd and sssd accept in practice, and nothing that could be a path.
const PRINCIPAL_RE = /^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,127}$/

export interface WorkspacesApiOptions {
  store: SecretsStore
  audit: AuditLog
  /** NSS: a member or group must exist before it is given a role */
  users: Pick<UserDirectory, 'userByName' | 'groupExists'>
}

const workspacesApi: ApiPlugin<WorkspacesApiOptions> = async (api, { store, audit, users }) => {
  function view (ws: Workspace, request: FastifyRequest): WorkspaceView {
    return { name: ws.name, role: roleIn(request.caller, ws), members: ws.members, groups: ws.groups, createdAt: ws.createdAt, createdBy: ws.createdBy, version: ws.version }
  }

  function existing (name: string): Workspace {
    const ws = store.getWorkspace(name)
    if (ws === undefined) throw nfsError('NFS_ERR_WORKSPACE_NOT_FOUND', [JSON.stringify(name.slice(0, 80))])
    return ws
  }

  function manageable (request: FastifyRequest, name: string): Workspace {
    const ws = existing(name)
    if (!can(request.caller, 'members.manage', ws)) throw nfsError('NFS_ERR_FORBIDDEN', [`managing members of ${ws.name} needs owner or admin`])
    return ws
  }

  function role (body: { role: string }): Role {
    const r = body.role
    if (!isRole(r)) throw nfsError('NFS_ERR_INVALID_ROLE', [JSON.stringify(r)])
    return r
  }

  function principal (name: string, kind: 'user' | 'group'): string {
    const known = PRINCIPAL_RE.test(name) && (kind === 'user' ? users.userByName(name) !== null : users.groupExists(name))
    if (!known) throw nfsError('NFS_ERR_UNKNOWN_USER', [`${kind} ${JSON.stringify(name.slice(0, 80))}`])
    return name
  }

  api.get('/workspaces', async (request) => {
    const all = store.listWorkspaces()
    const visible = request.caller.isAdmin ? all : all.filter(ws => roleIn(request.caller, ws) !== null)
    return visible.map(ws => view(ws, request))
  })

  api.get('/workspaces/:ws', { schema: { params: WorkspaceParams } }, async (request) => {
    const ws = existing(request.params.ws)
    if (!request.caller.isAdmin && roleIn(request.caller, ws) === null) throw nfsError('NFS_ERR_FORBIDDEN', [`you are not a member of workspace ${ws.name}`])
    return view(ws, request)
  })

  api.post('/workspaces', { schema: { body: CreateWorkspaceBody } }, async (request, reply) => {
    const body = request.body
    if (!can(request.caller, 'workspaces.manage', null)) throw nfsError('NFS_ERR_FORBIDDEN', ['creating workspaces needs a system admin'])
    const name = checkWorkspaceName(body.name)
    if (name === PERSONAL) throw nfsError('NFS_ERR_WORKSPACE_EXISTS', [PERSONAL])
    // Without --owner the creator owns it: a workspace nobody can use would surprise (in user mode, always).
    const owner = body.owner !== undefined ? principal(body.owner, 'user') : (request.caller.user.startsWith('uid:') ? null : request.caller.user)
    const ws = await store.createWorkspace(name, request.caller.user, { owner })
    await audit.append({ action: 'workspace.create', actor: request.caller.user, workspace: name })
    return reply.code(201).send(view(ws, request))
  })

  api.delete('/workspaces/:ws', { schema: { params: WorkspaceParams } }, async (request): Promise<DeletedWorkspace> => {
    if (!can(request.caller, 'workspaces.manage', null)) throw nfsError('NFS_ERR_FORBIDDEN', ['deleting workspaces needs a system admin'])
    const ws = existing(request.params.ws)
    await store.deleteWorkspace(ws.name)
    await audit.append({ action: 'workspace.delete', actor: request.caller.user, workspace: ws.name })
    return { deleted: ws.name }
  })

  api.put('/workspaces/:ws/members/:user', { schema: { params: MemberParams, body: RoleBody } }, async (request) => {
    const p = request.params
    const ws = manageable(request, p.ws)
    const r = role(request.body)
    const updated = await store.setMember(ws.name, principal(p.user, 'user'), r)
    await audit.append({ action: 'member.set', actor: request.caller.user, workspace: ws.name, detail: { user: p.user, role: r } })
    return view(updated, request)
  })

  api.delete('/workspaces/:ws/members/:user', { schema: { params: MemberParams } }, async (request) => {
    const p = request.params
    const ws = manageable(request, p.ws)
    const updated = await store.setMember(ws.name, p.user, null)
    await audit.append({ action: 'member.remove', actor: request.caller.user, workspace: ws.name, detail: { user: p.user } })
    return view(updated, request)
  })

  api.put('/workspaces/:ws/groups/:group', { schema: { params: GroupParams, body: RoleBody } }, async (request) => {
    const p = request.params
    const ws = manageable(request, p.ws)
    const r = role(request.body)
    const updated = await store.setGroup(ws.name, principal(p.group, 'group'), r)
    await audit.append({ action: 'group.set', actor: request.caller.user, workspace: ws.name, detail: { group: p.group, role: r } })
    return view(updated, request)
  })

  api.delete('/workspaces/:ws/groups/:group', { schema: { params: GroupParams } }, async (request) => {
    const p = request.params
    const ws = manageable(request, p.ws)
    const updated = await store.setGroup(ws.name, p.group, null)
    await audit.append({ action: 'group.remove', actor: request.caller.user, workspace: ws.name, detail: { group: p.group } })
    return view(updated, request)
  })
}

export default workspacesApi
