// The workspaces routes' contract: their parameters and bodies, and a workspace as every route answers it.
import { Type } from '@sinclair/typebox'
import type { Role } from '../types.js'

export const WorkspaceParams = Type.Object({ ws: Type.String({ maxLength: 200 }) })
export const MemberParams = Type.Object({ ws: Type.String({ maxLength: 200 }), user: Type.String({ maxLength: 200 }) })
export const GroupParams = Type.Object({ ws: Type.String({ maxLength: 200 }), group: Type.String({ maxLength: 200 }) })
// A string, not an enum of roles: an unknown role gets its own code (NFS_ERR_INVALID_ROLE), not a schema error.
export const RoleBody = Type.Object({ role: Type.String({ maxLength: 20 }) }, { additionalProperties: false })
export const CreateWorkspaceBody = Type.Object({
  name: Type.String({ maxLength: 200 }),
  owner: Type.Optional(Type.String({ maxLength: 200 }))
}, { additionalProperties: false })

/** A workspace as GET /workspaces/:ws answers it; `role` is the caller's own. */
export interface WorkspaceView {
  name: string
  role: Role | null
  members: Record<string, Role>
  groups: Record<string, Role>
  createdAt: string
  createdBy: string
  version: number
}

/** DELETE /workspaces/:ws */
export interface DeletedWorkspace { deleted: string }
