// `nf-secrets sbatch`: a run for a Nextflow head that runs as a Slurm batch job, armed on the login node.
//
// The run must exist before the job (its environment goes into the submission) and the job id exists only after
// it, so the run waits for its job in two steps:
//  1. arm with a short TTL, the bind window (BIND_WINDOW_S): if this command dies before step 3, the run expires
//     by itself and nothing stays;
//  2. `sbatch --parsable` with the run's environment (paths and ids only, never a value) in its environment;
//  3. bind: one compare-and-swap in the daemon that records the job id and clears the TTL, against the TTL's expiry,
//     which re-checks the TTL inside its own write. Exactly one wins: bound (from then on only the job leaving the
//     queue, in any way, or its Nextflow ending, ends the run), or expired (the bind is refused and the job is
//     cancelled here, since it would start without its secrets).
// If sbatch fails the run is revoked at once; if the bind fails the job is cancelled and the run revoked.
import { spawn } from 'node:child_process'
import { resolve } from 'node:path'
import { nfsError } from '../errors.js'
import type { Command, CommandContext } from './args.js'
import { safeText } from './output.js'
import { leastPrivilege, pipelineRequest, PROVISION_OPTIONS } from './least-privilege.js'
import type { CreatedRun } from '../contract/runs.js'

/** How long an armed run waits for its job id before it expires by itself. */
export const BIND_WINDOW_S = 180
/** sbatch is killed after this long (it retries an unreachable controller on its own for a while). */
export const SBATCH_DEADLINE_MS = 120_000

function list (v: unknown): string[] | undefined {
  if (typeof v !== 'string' || v === '') return undefined
  return v.split(',').map(s => s.trim()).filter(s => s !== '')
}

/**
 * sbatch's argv: `--parsable`, then the user's arguments unchanged, except that an `--export=` among the leading
 * options that does not export everything gets the run's variable names added (sbatch then takes their values from
 * its environment), so the job sees the run whatever it exports. Options that would defeat the run are refused:
 * `--wait` (sbatch would return only once the job ended, after the bind window). Pure.
 */
export function sbatchArgv (userArgs: readonly string[], runVars: readonly string[]): string[] {
  const out = [...userArgs]
  for (let i = 0; i < out.length; i++) {
    const tok = out[i]!
    if (!tok.startsWith('-')) break // the script: what follows is its own arguments
    if (tok === '--wait' || tok === '-W') throw nfsError('NFS_ERR_USAGE', ['nf-secrets sbatch cannot --wait: the run is tied to the job once sbatch returns its id'])
    const m = /^--export(=(.*))?$/.exec(tok)
    if (m === null) continue
    const at = m[1] !== undefined ? i : i + 1
    const value = m[1] !== undefined ? m[2]! : out[i + 1]
    if (value === undefined) break
    if (!/^ALL(,|$)/.test(value)) out[at] = `${m[1] !== undefined ? '--export=' : ''}${[value, ...runVars].join(',')}`
    if (m[1] === undefined) i++
  }
  return ['--parsable', ...out]
}

/** The job id of `sbatch --parsable`'s output (`123` or `123;cluster`), or null. Pure. */
export function parseParsable (stdout: string): { line: string, jobId: string, cluster: string | null } | null {
  const line = stdout.trim().split('\n').at(-1)?.trim() ?? ''
  const m = /^(\d+)(?:;(\S+))?$/.exec(line)
  return m === null ? null : { line, jobId: m[1]!, cluster: m[2] ?? null }
}

interface Exit { code: number | null, signal: NodeJS.Signals | null, stdout: string, spawnError?: string }

function run (file: string, args: string[], env: NodeJS.ProcessEnv, cwd: string, stdio: 'inherit' | 'ignore'): Promise<Exit> {
  return new Promise((resolveExit) => {
    const child = spawn(file, args, { env, cwd, stdio: [stdio, 'pipe', 'inherit'] })
    let stdout = ''
    const timer = setTimeout(() => child.kill('SIGKILL'), SBATCH_DEADLINE_MS)
    child.stdout!.on('data', (c: Buffer) => { if (stdout.length < 65536) stdout += c.toString('utf8') })
    child.once('error', (err: NodeJS.ErrnoException) => { clearTimeout(timer); resolveExit({ code: null, signal: null, stdout, spawnError: err.code ?? 'error' }) })
    child.once('close', (code, signal) => { clearTimeout(timer); resolveExit({ code, signal, stdout }) })
  })
}

async function sbatchCommand (ctx: CommandContext): Promise<number> {
  const client = ctx.client()
  const targets = list(ctx.options.target)
  const only = list(ctx.options.only)
  const launchDir = resolve(ctx.io.cwd, (ctx.options.dir as string | undefined) ?? '.')
  const names = leastPrivilege(ctx, pipelineRequest(ctx.options.pipeline as string | undefined, launchDir, ctx.io))
  // Never SLURM_JOB_ID of the submitting shell (an allocation's): this run belongs to the job about to be submitted.
  const created = await client.request<CreatedRun>('POST', '/runs', {
    body: {
      mode: 'arm',
      launchDir,
      ...names,
      ttlSeconds: BIND_WINDOW_S,
      ...(ctx.global.workspace !== undefined ? { workspace: ctx.global.workspace } : {}),
      ...(targets !== undefined ? { targets } : {}),
      ...(only !== undefined ? { only } : {})
    }
  })
  const { runId } = created
  const revoke = async (): Promise<void> => {
    try {
      await client.request('DELETE', `/runs/${runId}`)
    } catch (err) {
      ctx.io.stderr.write(`nf-secrets: could not revoke run ${runId} (${(err as { code?: string }).code ?? 'error'}); it expires within ${BIND_WINDOW_S} s\n`)
    }
  }
  // A signal now must not leave a job without its run or a run without its job: noted, acted on below.
  let interrupted: NodeJS.Signals | null = null
  const note = (sig: NodeJS.Signals): void => { interrupted ??= sig }
  const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']
  for (const s of sigs) process.on(s, note)
  try {
    let argv: string[]
    try {
      argv = sbatchArgv(ctx.args, Object.keys(created.env))
    } catch (err) {
      await revoke()
      throw err
    }
    const env = { ...ctx.io.env, ...created.env }
    const r = await run('sbatch', argv, env, ctx.io.cwd, 'inherit')
    const job = r.code === 0 ? parseParsable(r.stdout) : null
    if (job === null) {
      await revoke()
      const why = r.spawnError !== undefined ? `could not start sbatch (${r.spawnError})` : r.code === 0 ? 'sbatch printed no job id' : `sbatch failed (${r.signal ?? `exit ${r.code}`})`
      ctx.io.stderr.write(`nf-secrets: ${why}; run ${runId} revoked, nothing was left\n`)
      return r.code !== null && r.code !== 0 ? r.code : 1
    }
    const cancel = async (): Promise<void> => {
      await run('scancel', [...(job.cluster !== null ? ['-M', job.cluster] : []), job.jobId], env, ctx.io.cwd, 'ignore')
      await revoke()
    }
    if (interrupted !== null) {
      await cancel()
      ctx.io.stderr.write(`nf-secrets: interrupted; job ${job.jobId} cancelled, run ${runId} revoked\n`)
      return 130
    }
    try {
      await client.request('POST', `/runs/${runId}/slurm-job`, { body: { jobId: job.jobId } })
    } catch (err) {
      await cancel()
      ctx.io.stderr.write(`nf-secrets: job ${job.jobId} cancelled: the run could not be tied to it\n`)
      throw err
    }
    if (ctx.global.json) ctx.io.stdout.write(`${JSON.stringify({ jobId: job.jobId, cluster: job.cluster, ...created })}\n`)
    else ctx.io.stdout.write(`${job.line}\n`)
    ctx.io.stderr.write(`nf-secrets: run ${runId} (${created.secrets.length} secret(s) to ${created.targets.map(safeText).join(',')}) is tied to Slurm job ${job.jobId}; it ends when the job leaves the queue or its Nextflow ends\n`)
    return 0
  } finally {
    for (const s of sigs) process.off(s, note)
  }
}

export const sbatchCommands: Command[] = [
  {
    path: ['sbatch'],
    usage: '[--target hpc,aws] [--only A,B | --all] [--allow-missing] [--pipeline P] [--dir D] [-w W] [SBATCH OPTIONS] SCRIPT [ARGS]',
    summary: 'submit a Nextflow head job with a run tied to it: the job id on stdout (as sbatch --parsable), the run id on stderr',
    options: {
      ...PROVISION_OPTIONS,
      pipeline: { type: 'string', description: 'the pipeline to scan for the secrets it references (default: the one in D)' },
      dir: { type: 'string', description: 'the launch dir the job\'s Nextflow runs in (default: this dir)' }
    },
    positionals: [0, Infinity],
    passthrough: 'options',
    run: sbatchCommand
  }
]
