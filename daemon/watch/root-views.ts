// What `watch list` and `status` show of the roots (watch-service.ts): each caller sees the config's roots and their
// own (an admin all: paths are not for everyone), how each is walked, why one is not, and in a cluster who polls it.
import type { WatchSummary, WatchView } from '../contract/watches.js'
import type { WatchRoots } from '../store/watch-roots.js'
import type { Caller } from '../types.js'
import type { Root, RootWalks } from './root-walks.js'
import type { RunDirWatcher } from './watcher.js'

export class RootViews {
  readonly #walks: RootWalks
  readonly #watcher: RunDirWatcher
  readonly #store: WatchRoots

  constructor (walks: RootWalks, watcher: RunDirWatcher, store: WatchRoots) {
    this.#walks = walks
    this.#watcher = watcher
    this.#store = store
  }

  /** Which roots a caller may see: an admin all, a user the config's and their own (paths are not for everyone). */
  visible (caller: Caller | undefined, r: Root): boolean {
    return caller === undefined || caller.isAdmin || r.source === 'config' || r.uid === caller.uid
  }

  /** For `status` and metrics; without a caller (metrics, the daemon's own use) everything. */
  summary (caller?: Caller): WatchSummary {
    const groups = this.#watcher.groups()
    const seen = (key: string): boolean => {
      if (!key.startsWith('root:')) return caller === undefined || caller.isAdmin
      const r = this.#walks.roots.get(key.slice(5))
      return r !== undefined && this.visible(caller, r)
    }
    const mine = groups.filter(g => seen(g.key))
    const visible = [...this.#walks.roots.values()].filter(r => this.visible(caller, r))
    return {
      roots: visible.length,
      // in a cluster: how many of them this node walks and polls (another node polls the rest)
      ...(this.#store.node !== null ? { polledHere: visible.filter(r => this.#walks.active.has(r.root)).length } : {}),
      launchDirs: mine.reduce((n, g) => n + g.launchDirs, 0),
      degraded: mine.filter(g => g.degraded !== null).map(g => `${g.key.replace(/^root:/, '')}: ${g.degraded}`),
      walking: [...this.#walks.walking.keys()].filter(root => seen(`root:${root}`)),
      limited: mine.filter(g => g.limited !== null).map(g => `${g.key.replace(/^root:/, '')}: ${g.limited}`)
    }
  }

  view (r: Root): WatchView {
    const g = this.#watcher.groups().find(x => x.key === `root:${r.root}`)
    return { root: r.root, depth: r.depth, workspace: r.workspace, targets: r.targets, poll: g?.poll ?? r.poll, intervalMs: this.#walks.groupOptions(r).intervalMs, owner: r.owner, source: r.source, launchDirs: g?.launchDirs ?? 0, degraded: g?.degraded ?? this.#refusedView(r.root), limited: g?.limited ?? null, walking: this.#walks.walking.has(r.root), ...this.#poller(r.root) }
  }

  #refusedView (root: string): string | null {
    const why = this.#walks.refused.get(root)
    return why !== undefined ? `not walked: ${why}` : null
  }

  /** Cluster mode: the node that polls the root, as this node knows it (itself only while it really watches it). */
  #poller (root: string): { poller?: string | null } {
    const node = this.#store.node
    if (node === null) return {}
    if (this.#walks.active.has(root)) return { poller: node }
    const p = this.#store.pollerOf(root)
    return { poller: p === node ? null : p }
  }
}
