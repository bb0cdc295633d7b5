// `run`, `arm` and `runs list|show|revoke`: a run's secrets for exactly as long as it lives.
import { spawn } from 'node:child_process'
import { constants } from 'node:os'
import { resolve } from 'node:path'
import { nfsError } from '../errors.js'
import type { Command, CommandContext } from './args.js'
import { cell, renderFields, renderTable, safeText, shortTime } from './output.js'
import { leastPrivilege, pipelineRequest, PROVISION_OPTIONS, scanRequestOf } from './least-privilege.js'

import type { CreatedRun, RunDetail, RunView } from '../contract/runs.js'
export type { CreatedRun }

function list (v: unknown): string[] | undefined {
  if (typeof v !== 'string' || v === '') return undefined
  return v.split(',').map(s => s.trim()).filter(s => s !== '')
}

/** `90`, `90s`, `15m`, `2h` -> seconds. Pure. */
export function parseDuration (text: string): number {
  const m = /^(\d+)([smh]?)$/.exec(text.trim())
  if (m === null) throw nfsError('NFS_ERR_USAGE', ['a duration is a number of seconds, or a number followed by s, m or h (e.g. 15m)'])
  const n = Number(m[1]) * ({ '': 1, s: 1, m: 60, h: 3600 } as Record<string, number>)[m[2]!]!
  if (n < 1) throw nfsError('NFS_ERR_USAGE', ['a duration must be at least one second'])
  return n
}

/** A POSIX shell word that means exactly `s`. Pure. */
export function shellQuote (s: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(s) ? s : `'${s.replace(/'/g, '\'\\\'\'')}'`
}

/** The `export` line for eval. The env holds paths and ids, never values. Pure. */
export function exportLine (env: Record<string, string>): string {
  const order = ['NXF_SECRETS_FILE', 'NXF_UUID', 'NF_SECRETS_RUN_ID']
  const keys = [...order.filter(k => k in env), ...Object.keys(env).filter(k => !order.includes(k)).sort()]
  return `export ${keys.map(k => `${k}=${shellQuote(env[k]!)}`).join(' ')}\n`
}

function createBody (ctx: CommandContext, mode: 'run' | 'arm', launchDir: string): Record<string, unknown> {
  const targets = list(ctx.options.target)
  const only = list(ctx.options.only)
  const slurmJobId = ctx.io.env.SLURM_JOB_ID
  return {
    mode,
    launchDir,
    ...(ctx.global.workspace !== undefined ? { workspace: ctx.global.workspace } : {}),
    ...(targets !== undefined ? { targets } : {}),
    ...(only !== undefined ? { only } : {}),
    ...(slurmJobId !== undefined && /^[0-9]+(_[0-9]+)?$/.test(slurmJobId) ? { slurmJobId } : {})
  }
}

/** Run CMD with the run's env, forward signals, report its end, return its status (128+N for signal N). */
async function runCommand (ctx: CommandContext): Promise<number> {
  const [file] = ctx.args
  if (file === undefined) throw nfsError('NFS_ERR_USAGE', ['run needs a command: nf-secrets run [--target T] [--only A,B] [--] CMD ...'])
  const body = { ...createBody(ctx, 'run', ctx.io.cwd), ...leastPrivilege(ctx, scanRequestOf(ctx.args, ctx.io.cwd, ctx.io.env)) }
  const created = await ctx.client().request<CreatedRun>('POST', '/runs', { body })
  ctx.io.stderr.write(`nf-secrets: run ${created.runId} provisioned ${created.secrets.length} secret(s) to ${created.targets.join(',')}\n`)
  return await superviseCommand(ctx, created.runId, ctx.args, { ...ctx.io.env, ...created.env }, ctx.io.cwd)
}

/**
 * Run `argv` (no shell) with `env` in `cwd` for the run `runId`, stdio inherited and signals forwarded; report its end
 * to the daemon, which then revokes the run. Resolves with its status (128+N for signal N; 127 when it cannot start).
 */
export async function superviseCommand (ctx: CommandContext, runId: string, argv: readonly string[], env: NodeJS.ProcessEnv, cwd: string): Promise<number> {
  const [file, ...args] = argv
  const client = ctx.client()
  const child = spawn(file!, args, { stdio: 'inherit', env, cwd })
  // Terminal signals (Ctrl-C) already reach the child, which shares our process group; forwarding SIGINT then would
  // count twice in Nextflow's "third Ctrl-C exits at once" rule. Signals sent to us alone are passed on.
  const forward = (sig: NodeJS.Signals): void => {
    if (sig === 'SIGINT' && ctx.io.stdin.isTTY === true) return
    child.kill(sig)
  }
  const sigs: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']
  for (const s of sigs) process.on(s, forward)
  const end = await new Promise<{ exitCode?: number, signal?: string }>((resolveEnd) => {
    child.once('error', (err: NodeJS.ErrnoException) => {
      ctx.io.stderr.write(`nf-secrets: cannot start ${safeText(file!)}: ${err.code ?? 'error'}\n`)
      resolveEnd({ exitCode: 127 })
    })
    child.once('exit', (code, signal) => resolveEnd(signal !== null ? { signal } : { exitCode: code ?? 1 }))
  })
  for (const s of sigs) process.off(s, forward)
  try {
    const v = await client.request<RunView>('POST', `/runs/${runId}/finish`, { body: end })
    if (v.state === 'running') ctx.io.stderr.write(`nf-secrets: run ${runId} stays provisioned while its Nextflow session lives\n`)
  } catch (err) {
    // The daemon's monitor ends the run anyway once the process is gone; say so rather than fail the command.
    ctx.io.stderr.write(`nf-secrets: could not report the end of run ${runId} (${(err as { code?: string }).code ?? 'error'}); the daemon will end it\n`)
  }
  if (end.signal !== undefined) return 128 + (constants.signals[end.signal as NodeJS.Signals] ?? 0)
  return end.exitCode ?? 1
}

function runsTable (rows: RunView[]): string {
  if (rows.length === 0) return 'No runs.\n'
  return renderTable(['RUN', 'STATE', 'USER', 'WORKSPACE', 'MODE', 'SECRETS', 'TARGETS', 'CREATED', 'LAUNCH DIR'],
    rows.map(r => [r.runId, r.state, r.user, r.workspace, r.mode, r.names.length,
      Object.entries(r.targets).map(([n, t]) => `${n}:${t.state}`).join(','), shortTime(r.createdAt), r.launchDir]))
}

/** The line `runs show` prints for a warning code (daemon/runs/run-rules.ts). */
function warningText (code: string, r: RunView): string {
  if (code === 'nextflow-dollar') return `this run's Nextflow is older than 24.04.2 and expands $ in ${(r.dollarNames ?? []).join(', ')} (see docs/usage.md)`
  return code
}

function runText (r: RunView & Partial<Pick<RunDetail, 'owner'>>): string {
  const fields = renderFields([
    ['run', r.runId], ['state', r.state], ['user', r.user], ['workspace', r.workspace], ['mode', r.mode],
    ['host', r.host ?? null], ['owner', r.owner ?? null],
    ['launch dir', r.launchDir], ['created', r.createdAt], ['started', r.startedAt], ['ended', r.endedAt],
    ['end reason', r.endReason], ['exit code', r.exitCode], ['secrets', r.names.join(', ')],
    ...(r.warnings ?? []).map((w): [string, string] => ['warning', warningText(w, r)])
  ])
  const refs = Object.entries(r.targets).flatMap(([n, t]) => [
    `target ${n}: ${t.state}${t.attempts > 0 ? ` (attempts ${t.attempts}${t.lastError !== null ? `, ${t.lastError.code}` : ''})` : ''}`,
    ...t.refs.map(ref => `  ${cell(ref.name)}  ${cell(ref.ref)}`)
  ])
  return `${fields}${refs.join('\n')}\n`
}

export const runsCommands: Command[] = [
  {
    path: ['run'],
    usage: '[--target hpc,aws] [--only A,B | --all] [--allow-missing] [-w W] [--] CMD ...',
    summary: 'provision a run, run CMD with its env (signals forwarded), end the run when CMD exits; exits with its status',
    options: PROVISION_OPTIONS,
    positionals: [1, Infinity],
    passthrough: true,
    run: runCommand
  },
  {
    path: ['arm'],
    usage: '[--target ...] [--only A,B | --all] [--allow-missing] [--pipeline P] [--ttl 15m] [--dir D] [--format sh|json] [-w W]',
    summary: 'provision a run for the next Nextflow start in D and print export lines for eval',
    options: {
      ...PROVISION_OPTIONS,
      pipeline: { type: 'string', description: 'the pipeline to scan for the secrets it references (default: the one in D)' },
      ttl: { type: 'string', description: 'revoke if Nextflow has not started by then: 90, 90s, 15m, 2h (default: the daemon\'s runs.defaultTtlSeconds, 15m)' },
      dir: { type: 'string', description: 'the launch dir Nextflow will start in (default: this dir)' },
      format: { type: 'string', description: 'sh: export lines for eval (default); json: the run as JSON' }
    },
    positionals: [0, 0],
    async run (ctx) {
      const format = (ctx.options.format as string | undefined) ?? (ctx.global.json ? 'json' : 'sh')
      if (format !== 'sh' && format !== 'json') throw nfsError('NFS_ERR_USAGE', ['--format is sh or json'])
      const launchDir = resolve(ctx.io.cwd, (ctx.options.dir as string | undefined) ?? '.')
      const body: Record<string, unknown> = { ...createBody(ctx, 'arm', launchDir), ...leastPrivilege(ctx, pipelineRequest(ctx.options.pipeline as string | undefined, launchDir, ctx.io)) }
      if (typeof ctx.options.ttl === 'string') body.ttlSeconds = parseDuration(ctx.options.ttl)
      const created = await ctx.client().request<CreatedRun>('POST', '/runs', { body })
      ctx.io.stdout.write(format === 'json' ? `${JSON.stringify(created, null, 2)}\n` : exportLine(created.env))
      return 0
    }
  },
  {
    path: ['runs', 'list'],
    usage: '[--all]',
    summary: 'your runs that are live or still hold secrets (--all: every run in the ledger)',
    options: { all: { type: 'boolean', description: 'every run in the ledger, ended ones too' } },
    positionals: [0, 0],
    async run (ctx) {
      const rows = await ctx.client().request<RunView[]>('GET', '/runs', { query: { all: ctx.options.all === true ? 'true' : undefined } })
      ctx.out.result(rows, () => runsTable(rows))
      return 0
    }
  },
  {
    path: ['runs', 'show'],
    usage: 'RUN',
    summary: 'one run: state, targets and where each secret went (ARNs for aws)',
    positionals: [1, 1],
    async run (ctx) {
      const r = await ctx.client().request<RunDetail>('GET', `/runs/${encodeURIComponent(ctx.args[0]!)}`)
      ctx.out.result(r, () => runText(r))
      return 0
    }
  },
  {
    path: ['runs', 'revoke'],
    usage: 'RUN',
    summary: 'end a run now and remove its secrets from every target',
    positionals: [1, 1],
    async run (ctx) {
      const r = await ctx.client().request<RunView>('DELETE', `/runs/${encodeURIComponent(ctx.args[0]!)}`)
      ctx.out.result(r, () => `Run ${r.runId} is ${r.state}; targets: ${Object.entries(r.targets).map(([n, t]) => `${n} ${t.state}`).join(', ')}.`)
      return Object.values(r.targets).every(t => t.state === 'revoked') ? 0 : 1
    }
  }
]
