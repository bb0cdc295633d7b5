// The secrets routes' contract: what a request may hold and what a response is. Response schemas are compiled by
// fast-json-stringify, which writes exactly the properties named here, in this order: a field added to a stored record (a sealed value, say) can never reach a
// body by accident, and the output is byte for byte what JSON.stringify gave for the same objects (the order is
// that of toMeta() and resolveSecrets(); a test compares the two).
import { Type, type Static } from '@sinclair/typebox'
import type { Resolved } from '../rules/resolve.js'
import type { Scope, SecretMeta } from '../types.js'

// `type: [string, null]` rather than a union: fast-json-stringify serialises a type list inline, while an anyOf
// makes it validate every item against each branch first.
const NullableString = Type.Unsafe<string | null>({ type: ['string', 'null'] })
const ScopeString = Type.Unsafe<Scope>({ type: 'string' })

export const SecretMetaSchema = Type.Object({
  name: Type.String(),
  scope: ScopeString,
  createdAt: Type.String(),
  createdBy: Type.String(),
  updatedAt: Type.String(),
  updatedBy: Type.String(),
  lastUsed: NullableString,
  version: Type.Integer()
})

export const SecretList = Type.Array(SecretMetaSchema)

export const ResolvedSchema = Type.Object({
  name: Type.String(),
  source: Type.Unsafe<Resolved['source']>({ type: 'string', enum: ['user', 'workspace'] }),
  scope: ScopeString
})

export const ResolvedList = Type.Array(ResolvedSchema)

/** `?workspace=`: a workspace's secrets; absent, the caller's own and those of every workspace they may read. */
export const WorkspaceQuery = Type.Object({ workspace: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false })
export const SecretNameParams = Type.Object({ name: Type.String({ maxLength: 200 }) })
export const CreateSecretBody = Type.Object({
  name: Type.String({ maxLength: 200 }),
  value: Type.String(),
  workspace: Type.Optional(Type.String({ maxLength: 200 }))
}, { additionalProperties: false })
export const UpdateSecretBody = Type.Object({
  value: Type.String(),
  workspace: Type.Optional(Type.String({ maxLength: 200 }))
}, { additionalProperties: false })
export const ImportSecretsBody = Type.Object({
  workspace: Type.Optional(Type.String({ maxLength: 200 })),
  secrets: Type.Array(Type.Object({ name: Type.String({ maxLength: 200 }), value: Type.String() }, { additionalProperties: false }), { maxItems: 10_000 }),
  overwrite: Type.Optional(Type.Boolean())
}, { additionalProperties: false })

/** POST /secrets/import: what was written and what was left as it was. */
export interface ImportReply {
  scope: string
  imported: Array<{ name: string, action: 'created' | 'updated', version: number }>
  skipped: Array<{ name: string, reason: 'exists' }>
}

/** DELETE /secrets/:name */
export interface DeletedSecret { deleted: string, scope: string }

// Compile-time checks that the schemas and the domain types describe the same objects, both ways: tsc fails here
// when a field is added to SecretMeta or Resolved and not to its schema.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false
type Assert<T extends true> = T
export type SchemasMatchTypes = Assert<Same<Static<typeof SecretMetaSchema>, SecretMeta>> | Assert<Same<Static<typeof ResolvedSchema>, Resolved>>
