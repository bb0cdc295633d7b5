// /watches: list, add and remove watch roots. A user may watch only dirs they own; admins any (the service decides).
import type { FastifyInstance } from 'fastify'
import { Type, type Static } from '@sinclair/typebox'
import { nfsError } from '../errors.js'

const Target = Type.Union([Type.Literal('hpc'), Type.Literal('aws'), Type.Literal('memory')])
const AddBody = Type.Object({
  root: Type.String({ minLength: 1, maxLength: 4096 }),
  depth: Type.Optional(Type.Integer({ minimum: 0, maximum: 16 })),
  workspace: Type.Optional(Type.String({ maxLength: 200 })),
  targets: Type.Optional(Type.Array(Target, { maxItems: 3, uniqueItems: true })),
  poll: Type.Optional(Type.Boolean()),
  intervalMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 }))
}, { additionalProperties: false })
// Checked by hand below, not by a schema: DELETE may come with no body at all.
interface RemoveBody { root: string }
const RemoveQuery = Type.Object({ root: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })) }, { additionalProperties: false })

export default async function watchesApi (api: FastifyInstance): Promise<void> {
  const { deps } = api
  const watches = (): NonNullable<typeof deps.watches> => {
    if (deps.watches === undefined) throw nfsError('NFS_ERR_TARGET_UNAVAILABLE', ['watches', 'watching is not enabled'])
    return deps.watches
  }

  api.get('/watches', async (request) => watches().list(request.caller))

  api.post('/watches', { schema: { body: AddBody } }, async (request, reply) => {
    const view = await watches().add(request.caller, request.body as Static<typeof AddBody>)
    return reply.code(201).send(view)
  })

  // The root comes in the body or, for clients that send no body with DELETE, in `?root=`.
  api.delete('/watches', { schema: { querystring: RemoveQuery } }, async (request, reply) => {
    const fromQuery = (request.query as Static<typeof RemoveQuery>).root
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
