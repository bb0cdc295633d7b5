// An absolute path walked from `/` one component at a time, a symlink followed by its target's components, so that
// the caller looks at each directory on the way (lstat, make, check) before the next is named. Two walks use it with
// their own checks: the daemon's trusted dirs (trusted-dirs.ts: root or the daemon owns each one) and the per-user
// child's (user-tree.ts: root or the user). Pure, importing only node:path, so that the child, which runs as the user,
// loads no more of the daemon through it; what the walk does with the file system comes in from the caller.
import { dirname, join } from 'node:path'

const MAX_SYMLINK_HOPS = 40

/** What the caller found at a component, once checked: a directory to go on from, a symlink to follow, or nothing. */
export type Component = 'dir' | 'symlink' | 'missing'

export interface ComponentWalk {
  /** Look at `path`, the next component (`last`: none follows it), and check it; throw to refuse it. */
  visit: (path: string, last: boolean) => Promise<Component>
  /** The target of a symlink `visit` accepted. */
  readlink: (path: string) => Promise<string>
  /** The error once more than 40 symlinks were followed. */
  tooManySymlinks: () => Error
}

/** A path's components, without the empty ones and `.`; `..` is kept for the walk to take. */
export function pathComponents (path: string): string[] {
  return path.split('/').filter(c => c !== '' && c !== '.')
}

/**
 * Walk absolute `path` from `/`: each component is visited, a directory entered, a symlink's target walked in its
 * place (from `/` when absolute); `..` leaves the directory reached so far. The symlink-free path reached, or null
 * when a component is missing.
 */
export async function walkComponents (path: string, walk: ComponentWalk): Promise<string | null> {
  let pending = pathComponents(path)
  let cur = '/'
  let hops = 0
  while (pending.length > 0) {
    const c = pending.shift()!
    if (c === '..') { cur = dirname(cur); continue }
    const next = join(cur, c)
    const found = await walk.visit(next, pending.length === 0)
    if (found === 'missing') return null
    if (found === 'symlink') {
      if (++hops > MAX_SYMLINK_HOPS) throw walk.tooManySymlinks()
      const link = await walk.readlink(next)
      if (link.startsWith('/')) cur = '/'
      pending = [...pathComponents(link), ...pending]
      continue
    }
    cur = next
  }
  return cur
}
