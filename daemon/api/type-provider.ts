// fastify's type provider for TypeBox: a route's schema gives request.body, .query and .params their types, so no
// route casts what it validated. These are the few lines of @fastify/type-provider-typebox 5.x (the line that
// supports our TypeBox 0.34) that we use; its runtime part (a re-export of TypeBox, a TypeBox validator compiler)
// we do not, since fastify's own ajv validates the same JSON Schema.
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyPluginOptions, FastifyTypeProvider, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify'
import type { Static, TSchema } from '@sinclair/typebox'

export interface TypeBoxTypeProvider extends FastifyTypeProvider {
  validator: this['schema'] extends TSchema ? Static<this['schema']> : unknown
  serializer: this['schema'] extends TSchema ? Static<this['schema']> : unknown
}

/** The instance every api/ plugin is handed. */
export type ApiInstance = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, TypeBoxTypeProvider>

/** An api/ plugin whose options are exactly what its routes use (STYLE: give each plugin its options, not a bag). */
export type ApiPlugin<Options extends FastifyPluginOptions> = FastifyPluginAsync<Options, RawServerDefault, TypeBoxTypeProvider>
