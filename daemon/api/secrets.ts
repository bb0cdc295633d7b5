// /secrets: metadata, writes and resolution. Values come in, never go out: no route returns a stored value.
// The secret.* events come from the store's change feed (events.ts), not from here.
import type { FastifyReply, FastifyRequest } from 'fastify'
import { can, PERSONAL } from '../rules/access.js'
import { nfsError } from '../errors.js'
import { resolveSecrets, userScope, workspaceScope } from '../rules/resolve.js'
import { SecretValue } from '../secret-value.js'
import { checkSecretName, checkSecretValue } from '../rules/validate.js'
import type { Caller, Scope, Workspace } from '../types.js'
import type { SecretsStore } from '../store/secrets-store.js'
import type { AuditLog } from '../store/audit-log.js'
import { BodyCache, sendCached, type CachedBody } from './body-cache.js'
import { CreateSecretBody, ResolvedList, SecretList, SecretNameParams, UpdateSecretBody, WorkspaceQuery, type DeletedSecret } from '../contract/secrets.js'
import type { ApiPlugin } from './type-provider.js'

/** The workspace a request names, checked to exist; null for the caller's user secrets (scope user:NAME; the implicit workspace `personal`). */
export function workspaceOf (store: Pick<SecretsStore, 'getWorkspace'>, name: string | undefined): Workspace | null {
  if (name === undefined || name === '' || name === PERSONAL) return null
  const ws = store.getWorkspace(name)
  if (ws === undefined) throw nfsError('NFS_ERR_WORKSPACE_NOT_FOUND', [JSON.stringify(name.slice(0, 80))])
  return ws
}

export function writableScope (caller: Caller, ws: Workspace | null): Scope {
  if (ws === null) return userScope(caller.user)
  if (!can(caller, 'secrets.write', ws)) throw nfsError('NFS_ERR_FORBIDDEN', [`writing secrets of workspace ${ws.name} needs owner, admin or maintain`])
  return workspaceScope(ws.name)
}

/**
 * The If-Match header of a write, as the version the caller read: `3`, `"3"` or `W/"3"`. Absent: no expectation.
 * A secret's version is its entity tag (GET /secrets lists it), so a client can update only what it has seen.
 */
export function ifMatch (request: FastifyRequest): { ifVersion?: number } {
  const raw = request.headers['if-match']
  if (raw === undefined) return {}
  const m = /^\s*(?:W\/)?"?([1-9][0-9]{0,15})"?\s*$/.exec(Array.isArray(raw) ? raw.join(',') : raw)
  if (m === null) throw nfsError('NFS_ERR_BAD_REQUEST', ['If-Match must be the version number of the record, e.g. "3"'])
  return { ifVersion: Number(m[1]) }
}

function readable (caller: Caller, ws: Workspace): void {
  if (!can(caller, 'secrets.read', ws)) throw nfsError('NFS_ERR_FORBIDDEN', [`you are not a member of workspace ${ws.name}`])
}

export interface SecretsApiOptions {
  store: SecretsStore
  audit: AuditLog
}

const secretsApi: ApiPlugin<SecretsApiOptions> = async (api, { store, audit }) => {
  // One cache per server instance. Keys are the route and the exact scopes the body is built from (NUL cannot occur
  // in a scope); the caller's right to read those scopes is checked before every lookup.
  const bodies = new BodyCache()
  const cachedBody = (key: string, reply: FastifyReply, build: () => unknown): CachedBody =>
    bodies.get(key, store.revision, () => reply.serialize(build()))

  api.get('/secrets', { schema: { querystring: WorkspaceQuery, response: { 200: SecretList } } }, async (request, reply) => {
    const { workspace } = request.query
    const caller = request.caller
    const scopes: Scope[] = [userScope(caller.user)]
    if (workspace !== undefined && workspace !== '' && workspace !== PERSONAL) {
      const ws = workspaceOf(store, workspace)!
      readable(caller, ws)
      scopes.push(workspaceScope(ws.name))
    } else if (workspace === undefined) {
      // No workspace named: the caller's user secrets and those of every workspace they may read.
      for (const ws of store.listWorkspaces()) {
        if (can(caller, 'secrets.read', ws)) scopes.push(workspaceScope(ws.name))
      }
    }
    return sendCached(request, reply, cachedBody(`list\0${scopes.join('\0')}`, reply, () => store.listSecrets(scopes)))
  })

  api.get('/secrets/resolve', { schema: { querystring: WorkspaceQuery, response: { 200: ResolvedList } } }, async (request, reply) => {
    const { workspace } = request.query
    const caller = request.caller
    const ws = workspaceOf(store, workspace)
    if (ws !== null) readable(caller, ws)
    const mineScope = userScope(caller.user)
    const theirScope = ws !== null ? workspaceScope(ws.name) : null
    const key = `resolve\0${mineScope}\0${theirScope ?? ''}`
    return sendCached(request, reply, cachedBody(key, reply, () => resolveSecrets(
      store.listSecrets([mineScope]),
      theirScope !== null ? store.listSecrets([theirScope]) : []
    )))
  })

  api.post('/secrets', { schema: { body: CreateSecretBody } }, async (request, reply) => {
    const body = request.body
    const name = checkSecretName(body.name)
    const scope = writableScope(request.caller, workspaceOf(store, body.workspace))
    checkSecretValue(body.value)
    const meta = await store.createSecret(scope, name, new SecretValue(body.value), request.caller.user)
    await audit.append({ action: 'secret.create', actor: request.caller.user, scope, name })
    return reply.code(201).send(meta)
  })

  api.put('/secrets/:name', { schema: { params: SecretNameParams, body: UpdateSecretBody } }, async (request) => {
    const body = request.body
    const name = checkSecretName(request.params.name)
    const scope = writableScope(request.caller, workspaceOf(store, body.workspace))
    checkSecretValue(body.value)
    const meta = await store.updateSecret(scope, name, new SecretValue(body.value), request.caller.user, ifMatch(request))
    await audit.append({ action: 'secret.update', actor: request.caller.user, scope, name })
    return meta
  })

  api.delete('/secrets/:name', { schema: { params: SecretNameParams, querystring: WorkspaceQuery } }, async (request): Promise<DeletedSecret> => {
    const name = checkSecretName(request.params.name)
    const { workspace } = request.query
    const scope = writableScope(request.caller, workspaceOf(store, workspace))
    await store.deleteSecret(scope, name, request.caller.user, ifMatch(request))
    await audit.append({ action: 'secret.delete', actor: request.caller.user, scope, name })
    return { deleted: name, scope }
  })
}

export default secretsApi
