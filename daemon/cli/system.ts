// nf-secrets status | whoami.
import type { StatusView, WhoamiView } from '../contract/system.js'
import type { Command } from './args.js'
import { formatDuration, renderFields, renderMap, renderTable, safeText, shortTime } from './output.js'

/** The cluster part of status: this node, etcd's health, and one line per node. */
function clusterLines (c: NonNullable<StatusView['cluster']>): string {
  const head = renderFields([
    ['node', c.node],
    ['etcd', `${c.etcd.healthy ? 'healthy' : 'NOT HEALTHY (arms and secret writes are refused)'}, revision ${c.etcd.revision}, ${c.etcd.endpoints.join(' ')}`]
  ])
  return head + 'nodes:\n' + c.nodes.map(n => `  ${safeText(n.name)}: ${n.alive ? 'alive' : 'gone'}, owns ${n.runs} run(s)\n`).join('')
}

/** A warning from /status: `{code, message}` (older daemons: a string). */
function warningText (w: unknown): string {
  if (typeof w === 'object' && w !== null && typeof (w as { message?: unknown }).message === 'string') {
    const { code, message } = w as { code?: unknown, message: string }
    return safeText(typeof code === 'string' ? `${message} (${code})` : message)
  }
  return safeText(String(w))
}

/** One line per target: usable or not, with whatever the target says about itself (warnings included). */
function targetLines (targets: StatusView['targets']): string[] {
  return Object.entries(targets ?? {}).map(([name, s]) => {
    const st = (typeof s === 'object' && s !== null ? s : {}) as { usable?: unknown, detail?: unknown, warnings?: unknown }
    const state = st.usable === false ? 'not usable' : 'usable'
    const detail = typeof st.detail === 'string' && st.detail !== '' ? `: ${safeText(st.detail)}` : ''
    const warnings = Array.isArray(st.warnings) ? st.warnings.map(w => `\n    warning: ${warningText(w)}`).join('') : ''
    return `  ${safeText(name)}: ${state}${detail}${warnings}`
  })
}

export function statusText (s: StatusView): string {
  const fields = renderFields([
    ['version', s.version],
    ['mode', s.mode],
    ['pid', s.pid],
    ['started', shortTime(s.startedAt)],
    ['uptime', formatDuration(s.uptimeSeconds)],
    ['secrets', s.secrets],
    ['workspaces', s.workspaces],
    ['runs', renderMap(s.runs)],
    ['watches', s.watches !== undefined ? `${s.watches.roots} roots${s.watches.polledHere !== undefined ? ` (${s.watches.polledHere} polled here)` : ''}, ${s.watches.launchDirs} launch dirs${s.watches.degraded.length > 0 ? `, ${s.watches.degraded.length} degraded` : ''}${(s.watches.walking?.length ?? 0) > 0 ? `, ${s.watches.walking!.length} still walking` : ''}${(s.watches.limited?.length ?? 0) > 0 ? `, ${s.watches.limited!.length} at the dir limit` : ''}` : '-']
  ])
  const targets = targetLines(s.targets)
  const warnings = (s.warnings ?? []).map(w => `  warning: ${warningText(w)}\n`).join('')
  return fields + (targets.length > 0 ? `targets:\n${targets.join('\n')}\n` : 'targets:  -\n') + warnings + (s.cluster !== undefined ? clusterLines(s.cluster) : '')
}

export function whoamiText (w: WhoamiView): string {
  const fields = renderFields([
    ['user', w.user],
    ['uid', w.uid],
    ['gid', w.gid],
    ['groups', w.groups.join(', ')],
    ['admin', w.admin ? 'yes' : 'no']
  ])
  return fields + '\n' + renderTable(['WORKSPACE', 'ROLE'], Object.entries(w.roles).map(([ws, r]) => [ws, r]))
}

export const systemCommands: Command[] = [
  {
    path: ['status'],
    usage: '',
    summary: 'daemon version, mode, uptime, counts of runs by state, targets configured',
    positionals: [0, 0],
    async run (ctx) {
      const s = await ctx.client().request<StatusView>('GET', '/status')
      ctx.out.result(s, () => statusText(s))
      return 0
    }
  },
  {
    path: ['whoami'],
    usage: '',
    summary: 'who the daemon sees you as (from the socket\'s peer credentials) and your role in each workspace',
    positionals: [0, 0],
    async run (ctx) {
      const w = await ctx.client().request<WhoamiView>('GET', '/whoami')
      ctx.out.result(w, () => whoamiText(w))
      return 0
    }
  }
]
