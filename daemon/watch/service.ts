// The watcher's face to the API and status.
import type { Caller } from '../types.js'

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
}

export interface WatchSummary {
  roots: number
  launchDirs: number
  degraded: string[]
  /** roots whose first walk is still going */
  walking?: string[]
  /** roots a walk of which stopped at limits.watchedDirsPerUser */
  limited?: string[]
}

export interface WatchService {
  /** what `caller` may see (a non-admin: the config's roots and their own); everything without a caller */
  summary (caller?: Caller): WatchSummary
  list (caller: Caller): WatchView[]
  add (caller: Caller, req: { root: string, depth?: number, workspace?: string, targets?: string[], poll?: boolean, intervalMs?: number }): Promise<WatchView>
  remove (caller: Caller, root: string): Promise<void>
}
