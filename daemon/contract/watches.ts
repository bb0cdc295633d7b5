// The watches routes' contract: what they accept, and a watch root as they (and status) show it.
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

/** A watch root as GET /watches lists it. */
export interface WatchView {
  root: string
  depth: number
  workspace: string | null
  targets: string[]
  poll: boolean
  intervalMs: number
  owner: string
  source: 'config' | 'api' | 'run'
  launchDirs: number
  degraded: string | null
  /** a walk stopped at limits.watchedDirsPerUser: part of the root is not watched */
  limited?: string | null
  /** the root's first walk is still going: launch dirs are still being found */
  walking: boolean
  /** cluster mode only: the node that walks and polls the root (null: none now); its other nodes list it, not poll it */
  poller?: string | null
}

/** The watches part of GET /status. */
export interface WatchSummary {
  roots: number
  launchDirs: number
  degraded: string[]
  /** roots whose first walk is still going */
  walking?: string[]
  /** roots a walk of which stopped at limits.watchedDirsPerUser */
  limited?: string[]
  /** cluster mode only: how many of `roots` this node walks and polls (another node polls the others) */
  polledHere?: number
}
