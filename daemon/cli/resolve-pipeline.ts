// `secrets resolve --pipeline PATH`: what a run of that pipeline would get (least privilege, SPEC 11), and which of
// the names it references resolve to nothing (such a run would stop with NFS_ERR_SECRET_MISSING).
import type { Resolved } from '../rules/resolve.js'
import { scanPipeline } from '../nextflow/pipeline-scan.js'
import type { CommandContext } from './args.js'
import { CliError } from './client.js'
import { pipelineRequest, readPipelineFile, withDirScript } from './least-privilege.js'
import { renderTable, safeText } from './output.js'

export interface PipelineResolution {
  /** the referenced names that resolve, with where each comes from */
  secrets: Resolved[]
  /** the referenced names that resolve to nothing */
  missing: string[]
  /** the files the scan read */
  files: string[]
}

/** Join the scan's names with the daemon's resolution. Pure. */
export function pipelineResolution (names: readonly string[], resolved: readonly Resolved[], files: string[]): PipelineResolution {
  const wanted = new Set(names)
  const secrets = resolved.filter(r => wanted.has(r.name))
  const have = new Set(secrets.map(r => r.name))
  return { secrets, missing: names.filter(n => !have.has(n)), files }
}

export async function resolvePipeline (ctx: CommandContext, pipeline: string): Promise<number> {
  const scan = scanPipeline(withDirScript(pipelineRequest(pipeline, '.', ctx.io)), readPipelineFile)
  if (!scan.found) throw new CliError('NFS_ERR_INVALID_PATH', `no pipeline script found at ${safeText(pipeline)}`)
  const rows = await ctx.client().request<Resolved[]>('GET', '/secrets/resolve', { query: { workspace: ctx.global.workspace } })
  const res = pipelineResolution(scan.names, rows, scan.files)
  ctx.out.result(res, () => {
    const table = res.secrets.length + res.missing.length === 0
      ? 'The pipeline references no secrets: a run of it gets none.\n'
      : renderTable(['NAME', 'SOURCE', 'SCOPE'], [...res.secrets.map(r => [r.name, r.source, r.scope]), ...res.missing.map(n => [n, 'MISSING', '-'])])
    return `${table}${res.missing.length > 0 ? `${res.missing.length} referenced secret(s) resolve to nothing: a run would stop with NFS_ERR_SECRET_MISSING (--allow-missing runs without them).\n` : ''}`
  })
  return 0
}
