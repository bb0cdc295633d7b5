// `watch add|list|remove`: dirs the daemon watches for Nextflow starts and ends (and, with targets, auto-runs).
import { resolve } from 'node:path'
import { nfsError } from '../errors.js'
import type { Command } from './args.js'
import { renderTable } from './output.js'
import type { WatchView } from '../contract/watches.js'

/** `--target aws,memory` (or repeated) -> ['aws', 'memory']. Pure. */
export function targetList (v: unknown): string[] | undefined {
  const parts = (Array.isArray(v) ? v : [v]).filter((x): x is string => typeof x === 'string')
  const out = parts.flatMap(p => p.split(',')).map(s => s.trim()).filter(s => s !== '')
  return out.length > 0 ? out : undefined
}

/** A positive integer option, or a usage error naming the option (never echoing the value). Pure. */
export function intOption (v: unknown, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN
  if (!Number.isInteger(n) || n < min || n > max) throw nfsError('NFS_ERR_USAGE', [`--${name} takes a whole number from ${min} to ${max}`])
  return n
}

/** The `watch list` table; in a cluster (rows that say who polls) a POLLER column. Pure. */
export function watchTable (rows: WatchView[]): string {
  if (rows.length === 0) return 'No watches.\n'
  const cluster = rows.some(w => w.poller !== undefined)
  return renderTable(['ROOT', 'SOURCE', 'OWNER', 'DEPTH', 'WORKSPACE', 'TARGETS', 'MODE', 'LAUNCH DIRS', 'DEGRADED', ...(cluster ? ['POLLER'] : [])],
    rows.map(w => [w.root, w.source, w.owner, w.depth, w.workspace ?? '-', w.targets.join(',') || '-',
      // A root still being walked at start-up is still finding its launch dirs: its count is a floor.
      w.poll ? `poll ${w.intervalMs}ms` : 'native', w.walking ? `${w.launchDirs} (walking)` : w.launchDirs, w.degraded ?? w.limited ?? '-',
      // Another node's root: its launch dirs are counted there, not here.
      ...(cluster ? [w.poller ?? '-'] : [])]))
}

export const watchCommands: Command[] = [
  {
    path: ['watch', 'add'],
    usage: 'DIR [--target aws,...] [--poll] [--interval MS] [--depth N] [-w W]',
    summary: 'watch DIR for Nextflow runs (--poll on NFS, Lustre, GPFS); with targets, unclaimed starts become auto-runs',
    options: {
      target: { type: 'string', multiple: true, description: 'targets of the auto-runs of unclaimed starts (none: watch only)' },
      poll: { type: 'boolean', description: 'poll instead of inotify (NFS, Lustre, GPFS: writes from other nodes raise no event)' },
      interval: { type: 'string', description: 'the poll interval in ms (100 to 600000; at least the daemon\'s limit for non-admins)' },
      depth: { type: 'string', description: 'how many levels below DIR to look for launch dirs (0 to 16)' }
    },
    positionals: [1, 1],
    async run (ctx) {
      const targets = targetList(ctx.options.target)
      const intervalMs = intOption(ctx.options.interval, 'interval', 100, 600_000)
      const depth = intOption(ctx.options.depth, 'depth', 0, 16)
      const body = {
        root: resolve(ctx.io.cwd, ctx.args[0]!),
        ...(targets !== undefined ? { targets } : {}),
        ...(ctx.options.poll === true ? { poll: true } : {}),
        ...(intervalMs !== undefined ? { intervalMs } : {}),
        ...(depth !== undefined ? { depth } : {}),
        ...(ctx.global.workspace !== undefined ? { workspace: ctx.global.workspace } : {})
      }
      const w = await ctx.client().request<WatchView>('POST', '/watches', { body })
      ctx.out.result(w, () => `Watching ${w.root} (${w.poll ? `polling every ${w.intervalMs} ms` : 'native events'}, depth ${w.depth}): ${w.launchDirs} launch dir(s) found.\n`)
      return 0
    }
  },
  {
    path: ['watch', 'list'],
    usage: '',
    summary: 'the watched roots you can see, and the launch dirs watched for your live runs',
    positionals: [0, 0],
    async run (ctx) {
      const rows = await ctx.client().request<WatchView[]>('GET', '/watches')
      ctx.out.result(rows, () => watchTable(rows))
      return 0
    }
  },
  {
    path: ['watch', 'remove'],
    usage: 'DIR',
    summary: 'stop watching DIR (a watch added with watch add)',
    positionals: [1, 1],
    async run (ctx) {
      const root = resolve(ctx.io.cwd, ctx.args[0]!)
      await ctx.client().request('DELETE', '/watches', { query: { root } })
      ctx.out.result({ root, removed: true }, () => `No longer watching ${root}.\n`)
      return 0
    }
  }
]
