// nf-secrets secrets list|show|add|update|delete|resolve. Values go in through read-value.ts and never come back out:
// the daemon answers with metadata only.
import { nfsError } from '../errors.js'
import type { SecretMeta } from '../types.js'
import type { DeletedSecret } from '../contract/secrets.js'
import type { Resolved } from '../rules/resolve.js'
import type { Command, CommandContext } from './args.js'
import { CliError, type ApiClient } from './client.js'
import { renderTable, safeText, shortTime } from './output.js'
import { readValue, VALUE_IN_ARGV } from './read-value.js'
import { resolvePipeline } from './resolve-pipeline.js'

export function secretsTable (rows: SecretMeta[]): string {
  if (rows.length === 0) return 'No secrets.\n'
  return renderTable(
    ['NAME', 'SCOPE', 'VERSION', 'UPDATED', 'BY', 'LAST USED'],
    rows.map(s => [s.name, s.scope, s.version, shortTime(s.updatedAt), s.updatedBy, shortTime(s.lastUsed)])
  )
}

/**
 * Pure: with -w W only W's secrets (the daemon's answer also holds the caller's user secrets, which `secrets list -w`
 * mixed in without saying so); without -w, every row (user secrets and each workspace's, the scope column tells them apart).
 */
export function onlyScope (rows: SecretMeta[], workspace: string | undefined): SecretMeta[] {
  return workspace === undefined ? rows : rows.filter(s => s.scope === `workspace:${workspace}`)
}

/**
 * Pure: the one secret `secrets show NAME` means among the rows of GET /secrets: with -w W the workspace's own, else
 * the caller's user secret (scope user:NAME).
 */
export function pickSecret (rows: readonly SecretMeta[], name: string, workspace: string | undefined): SecretMeta | undefined {
  return rows.find(s => s.name === name && (workspace === undefined ? s.scope.startsWith('user:') : s.scope === `workspace:${workspace}`))
}

/** Metadata of one secret, one field a line. */
export function secretDetail (s: SecretMeta): string {
  const rows: Array<[string, string]> = [['name', s.name], ['scope', s.scope], ['version', String(s.version)], ['updated', shortTime(s.updatedAt)], ['by', s.updatedBy], ['last used', shortTime(s.lastUsed)]]
  return rows.map(([k, v]) => `${`${k}:`.padEnd(11)}${safeText(v)}`).join('\n') + '\n'
}

export function resolvedTable (rows: Resolved[], workspace: string | undefined): string {
  if (rows.length === 0) return `A run ${workspace !== undefined ? `in workspace ${workspace}` : 'with your user secrets alone'} would get no secrets.\n`
  return renderTable(['NAME', 'SOURCE', 'SCOPE'], rows.map(r => [r.name, r.source, r.scope]))
}

/** SPEC 4: the workspace every user has, their user secrets alone (daemon/access.ts PERSONAL, not imported: CLI speed). */
const PERSONAL_WORKSPACE = 'personal'

const VALUE_OPTIONS = {
  'value-file': { type: 'string', description: 'read the value from this file (one trailing newline is dropped)' },
  base64: { type: 'boolean', description: 'store the bytes base64-encoded (binary or multi-line values; 48 KiB at most)' },
  // Declared only to refuse it with a clear message instead of "unknown option".
  value: { type: 'string', description: 'refused: a value on the command line is visible to every user (ps)' }
} as const

async function valueOf (ctx: CommandContext, name: string): Promise<string> {
  if (ctx.options.value !== undefined) throw new CliError('NFS_ERR_USAGE', VALUE_IN_ARGV)
  const valueFile = ctx.options['value-file']
  return await readValue({
    name: safeText(name),
    ...(typeof valueFile === 'string' ? { valueFile } : {}),
    base64: ctx.options.base64 === true,
    stdin: ctx.io.stdin,
    prompt: ctx.io.stderr
  })
}

/** How many times `secrets set` reads and writes again when another writer got in between. */
export const SET_ATTEMPTS = 3

/**
 * `secrets set`: create or overwrite (Nextflow's verb). Each attempt reads the secret's version and writes against it:
 * absent -> POST (refused if someone created it meanwhile), present -> PUT with If-Match: that version (refused if it
 * changed or went); a refused attempt starts again from the read, so a value never silently replaces one it did not see.
 */
export async function setSecret (client: ApiClient, name: string, value: string, workspace: string | undefined): Promise<{ meta: SecretMeta, created: boolean }> {
  const ws = workspace === PERSONAL_WORKSPACE ? undefined : workspace
  for (let attempt = 1; ; attempt++) {
    const rows = await client.request<SecretMeta[]>('GET', '/secrets', { query: { workspace: ws } })
    const cur = pickSecret(rows, name, ws)
    try {
      if (cur === undefined) {
        return { meta: await client.request<SecretMeta>('POST', '/secrets', { body: { name, value, ...(ws !== undefined ? { workspace: ws } : {}) } }), created: true }
      }
      const meta = await client.request<SecretMeta>('PUT', `/secrets/${encodeURIComponent(name)}`, {
        body: { value, ...(ws !== undefined ? { workspace: ws } : {}) },
        headers: { 'if-match': `"${cur.version}"` }
      })
      return { meta, created: false }
    } catch (err) {
      const code = (err as { code?: unknown }).code
      if (attempt < SET_ATTEMPTS && (code === 'NFS_ERR_SECRET_EXISTS' || code === 'NFS_ERR_CONFLICT')) continue
      throw err
    }
  }
}

async function write (ctx: CommandContext, kind: 'add' | 'update'): Promise<number> {
  const name = ctx.args[0]!
  const value = await valueOf(ctx, name)
  const workspace = ctx.global.workspace
  const ifVersion = ctx.options['if-version']
  if (ifVersion !== undefined && (typeof ifVersion !== 'string' || !/^[1-9][0-9]{0,15}$/.test(ifVersion))) throw new CliError('NFS_ERR_USAGE', '--if-version takes the version number secrets show printed, e.g. 3')
  const meta = kind === 'add'
    ? await ctx.client().request<SecretMeta>('POST', '/secrets', { body: { name, value, ...(workspace !== undefined ? { workspace } : {}) } })
    : await ctx.client().request<SecretMeta>('PUT', `/secrets/${encodeURIComponent(name)}`, { body: { value, ...(workspace !== undefined ? { workspace } : {}) }, ...(typeof ifVersion === 'string' ? { headers: { 'if-match': ifVersion } } : {}) })
  ctx.out.result(meta, () => `${kind === 'add' ? 'Added' : 'Updated'} ${safeText(meta.name)} in ${safeText(meta.scope)} (version ${meta.version}).`)
  return 0
}

const valueUsage = 'NAME [-w WORKSPACE] [--value-file F] [--base64]   (value from stdin, else a hidden prompt)'

export const secretsCommands: Command[] = [
  {
    path: ['secrets', 'list'],
    usage: '[-w WORKSPACE]',
    summary: 'names and metadata of your user secrets and your workspaces\' secrets (with -w: that workspace\'s only); never values',
    positionals: [0, 0],
    async run (ctx) {
      const all = await ctx.client().request<SecretMeta[]>('GET', '/secrets', { query: { workspace: ctx.global.workspace } })
      const rows = onlyScope(all, ctx.global.workspace)
      ctx.out.result(rows, () => secretsTable(rows))
      return 0
    }
  },
  {
    path: ['secrets', 'show'],
    usage: 'NAME [-w WORKSPACE]',
    summary: 'metadata of one secret: scope, version, who updated it and when, last use (never the value)',
    positionals: [1, 1],
    async run (ctx) {
      const name = ctx.args[0]!
      const rows = await ctx.client().request<SecretMeta[]>('GET', '/secrets', { query: { workspace: ctx.global.workspace } })
      const found = pickSecret(rows, name, ctx.global.workspace)
      if (found === undefined) {
        const e = nfsError('NFS_ERR_SECRET_NOT_FOUND', [JSON.stringify(safeText(name))])
        throw new CliError(e.code, e.message, e.statusCode)
      }
      ctx.out.result(found, () => secretDetail(found))
      return 0
    }
  },
  {
    path: ['secrets', 'add'],
    usage: valueUsage,
    summary: 'create a secret: in WORKSPACE with -w, else one of your user secrets',
    options: VALUE_OPTIONS,
    positionals: [1, 1],
    extraPositionals: VALUE_IN_ARGV,
    run: async (ctx) => await write(ctx, 'add')
  },
  {
    path: ['secrets', 'update'],
    usage: 'NAME [-w WORKSPACE] [--value-file F] [--base64] [--if-version N]',
    summary: 'replace the value of an existing secret',
    options: {
      ...VALUE_OPTIONS,
      // Two people (or two login nodes) updating one secret at once: with it, the second is refused (exit 5), not lost.
      'if-version': { type: 'string', description: 'only if the secret is still at this version (secrets show), else exit 5' }
    },
    positionals: [1, 1],
    extraPositionals: VALUE_IN_ARGV,
    run: async (ctx) => await write(ctx, 'update')
  },
  {
    path: ['secrets', 'set'],
    usage: valueUsage,
    summary: 'create a secret or replace its value (Nextflow\'s verb): in WORKSPACE with -w, else one of your user secrets',
    options: VALUE_OPTIONS,
    positionals: [1, 1],
    extraPositionals: VALUE_IN_ARGV,
    async run (ctx) {
      const name = ctx.args[0]!
      const { meta, created } = await setSecret(ctx.client(), name, await valueOf(ctx, name), ctx.global.workspace)
      ctx.out.result(meta, () => `${created ? 'Created' : 'Updated'} ${safeText(meta.name)} in ${safeText(meta.scope)} (version ${meta.version}).`)
      return 0
    }
  },
  {
    path: ['secrets', 'delete'],
    usage: 'NAME [-w WORKSPACE]',
    summary: 'delete a secret',
    positionals: [1, 1],
    async run (ctx) {
      const name = ctx.args[0]!
      const res = await ctx.client().request<DeletedSecret>('DELETE', `/secrets/${encodeURIComponent(name)}`, { query: { workspace: ctx.global.workspace } })
      ctx.out.result(res, () => `Deleted ${safeText(res.deleted)} from ${safeText(res.scope)}.`)
      return 0
    }
  },
  {
    path: ['secrets', 'resolve'],
    usage: '[-w WORKSPACE] [--pipeline PATH]',
    summary: 'what a run in WORKSPACE would get: each name and whether it comes from your user secrets or the workspace; with --pipeline, a run of that pipeline, and the names it references that resolve to nothing',
    options: { pipeline: { type: 'string', description: 'a pipeline (a main script or its dir): only the secrets it references' } },
    positionals: [0, 0],
    async run (ctx) {
      if (typeof ctx.options.pipeline === 'string') return await resolvePipeline(ctx, ctx.options.pipeline)
      const rows = await ctx.client().request<Resolved[]>('GET', '/secrets/resolve', { query: { workspace: ctx.global.workspace } })
      ctx.out.result(rows, () => resolvedTable(rows, ctx.global.workspace))
      return 0
    }
  }
]
