// The watches routes' contract.
import { Type } from '@sinclair/typebox'

const Target = Type.Union([Type.Literal('hpc'), Type.Literal('aws'), Type.Literal('memory')])
export const AddWatchBody = Type.Object({
  root: Type.String({ minLength: 1, maxLength: 4096 }),
  depth: Type.Optional(Type.Integer({ minimum: 0, maximum: 16 })),
  workspace: Type.Optional(Type.String({ maxLength: 200 })),
  targets: Type.Optional(Type.Array(Target, { maxItems: 3, uniqueItems: true })),
  poll: Type.Optional(Type.Boolean()),
  intervalMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 600_000 }))
}, { additionalProperties: false })
// DELETE /watches takes the root in `?root=` or in a body checked by hand (a DELETE may come with no body at all).
export const RemoveWatchQuery = Type.Object({ root: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })) }, { additionalProperties: false })
