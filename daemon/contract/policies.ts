// The policies routes' contract.
import { Type } from '@sinclair/typebox'

export const PolicyNameParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 64 }) })
// Unknown keys are refused: a misspelt `execution_role` must not silently render a policy without it.
export const RenderQuery = Type.Object({
  account: Type.Optional(Type.String({ maxLength: 64 })),
  region: Type.Optional(Type.String({ maxLength: 64 })),
  executionRole: Type.Optional(Type.String({ maxLength: 128 })),
  prefix: Type.Optional(Type.String({ maxLength: 300 })),
  kmsKey: Type.Optional(Type.String({ maxLength: 2048 }))
}, { additionalProperties: false })

/** GET /policies: one row a template. */
export interface PolicyInfo { name: string, description: string }
