// /watches: list, add and remove watch roots. A user may watch only dirs they own; admins any (the service decides).
import { nfsError } from '../errors.js'
import { AddWatchBody, RemoveWatchQuery } from '../contract/watches.js'
import type { ApiPlugin } from './type-provider.js'
import type { WatchService } from '../watch/watch-service.js'

// Checked by hand below, not by a schema: DELETE may come with no body at all.
interface RemoveBody { root: string }

export interface WatchesApiOptions {
  watches: WatchService
}

// Registered only where the daemon watches: without a watch service there is no /watches route (404), rather than
// a route that answers with a target's error code.
const watchesApi: ApiPlugin<WatchesApiOptions> = async (api, { watches }) => {
  api.get('/watches', async (request) => watches.list(request.caller))

  api.post('/watches', { schema: { body: AddWatchBody } }, async (request, reply) => {
    const view = await watches.add(request.caller, request.body)
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
    await watches.remove(request.caller, root)
    return reply.code(204).send()
  })
}

export default watchesApi
