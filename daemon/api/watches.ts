// /watches: list, add and remove watch roots. A user may watch only dirs they own; admins any (the service decides).
import { nfsError } from '../errors.js'
import { AddWatchBody, RemoveWatchQuery } from '../contract/watches.js'
import type { ApiInstance } from './type-provider.js'

// Checked by hand below, not by a schema: DELETE may come with no body at all.
interface RemoveBody { root: string }

export default async function watchesApi (api: ApiInstance): Promise<void> {
  const { deps } = api
  const watches = (): NonNullable<typeof deps.watches> => {
    if (deps.watches === undefined) throw nfsError('NFS_ERR_TARGET_UNAVAILABLE', ['watches', 'watching is not enabled'])
    return deps.watches
  }

  api.get('/watches', async (request) => watches().list(request.caller))

  api.post('/watches', { schema: { body: AddWatchBody } }, async (request, reply) => {
    const view = await watches().add(request.caller, request.body)
    return reply.code(201).send(view)
  })

  // The root comes in the body or, for clients that send no body with DELETE, in `?root=`.
  api.delete('/watches', { schema: { querystring: RemoveWatchQuery } }, async (request, reply) => {
    const fromQuery = request.query.root
    let root = fromQuery
    if (root === undefined && request.body !== undefined && request.body !== null) {
      const body = request.body as Partial<RemoveBody>
      if (typeof body !== 'object' || typeof body.root !== 'string' || body.root === '' || Object.keys(body).length !== 1) {
        throw nfsError('NFS_ERR_BAD_REQUEST', ['body must be {"root": "<dir>"}'])
      }
      root = body.root
    }
    if (root === undefined) throw nfsError('NFS_ERR_BAD_REQUEST', ['which root? send {"root": "<dir>"} or ?root='])
    await watches().remove(request.caller, root)
    return reply.code(204).send()
  })
}
