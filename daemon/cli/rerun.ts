// `nf-secrets rerun TASK_DIR [-- CMD ...]` (SPEC 11): debug a task after its run, as `bash .command.run` did before
// Nextflow's secrets files were cleaned up. The task's wrapper names the `.nf-<hash>.secrets` file it sources and the
// names it greps out of it; the daemon places exactly those there, as the caller, for as long as CMD runs (default
// `bash .command.run`, in TASK_DIR), and removes the file when CMD ends (a short run like any other: a killed CLI or
// a daemon restart ends it too). The wrapper is read here, as the caller; the daemon checks the task dir is theirs.
import { constants } from 'node:fs'
import { open } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { nfsError } from '../errors.js'
import { parseSecretsSourcing } from '../nextflow/secrets-env-file.js'
import type { Command, CommandContext } from './args.js'
import { safeText } from './output.js'
import { superviseCommand, type CreatedRun } from './runs.js'

/** A wrapper is some 10 KiB; one this large is not Nextflow's. */
const MAX_WRAPPER_BYTES = 4 * 1024 * 1024

async function readWrapper (taskDir: string): Promise<string> {
  const path = join(taskDir, '.command.run')
  try {
    const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK)
    try {
      const st = await fh.stat()
      if (!st.isFile() || st.size > MAX_WRAPPER_BYTES) throw nfsError('NFS_ERR_INVALID_PATH', [`${JSON.stringify(safeText(path))}: not a task wrapper`])
      return await fh.readFile('utf8')
    } finally {
      await fh.close()
    }
  } catch (err) {
    if ((err as { code?: string }).code?.startsWith('NFS_ERR_') === true) throw err
    throw nfsError('NFS_ERR_INVALID_PATH', [`${JSON.stringify(safeText(path))}: cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}); TASK_DIR is a task's work dir`])
  }
}

async function rerun (ctx: CommandContext): Promise<number> {
  const [dir, ...rest] = ctx.args
  // The command comes after `--` (passthrough keeps it verbatim); anything else after TASK_DIR is a mistake.
  if (rest.length > 0 && rest[0] !== '--') throw nfsError('NFS_ERR_USAGE', ['a command goes after --: nf-secrets rerun TASK_DIR [-- CMD ...]'])
  const cmd = rest.slice(1)
  const taskDir = resolve(ctx.io.cwd, dir!)
  let sourcing
  try {
    sourcing = parseSecretsSourcing(await readWrapper(taskDir))
  } catch (err) {
    if (err instanceof TypeError) throw nfsError('NFS_ERR_INVALID_PATH', [`${JSON.stringify(safeText(join(taskDir, '.command.run')))}: ${err.message}`])
    throw err
  }
  if (sourcing === null || sourcing.names.length === 0) {
    throw nfsError('NFS_ERR_INVALID_PATH', [`${JSON.stringify(safeText(join(taskDir, '.command.run')))} sources no secrets file: run it as it is`])
  }
  const body = {
    mode: 'run',
    launchDir: taskDir,
    names: sourcing.names,
    secretsFile: sourcing.path,
    ...(ctx.global.workspace !== undefined ? { workspace: ctx.global.workspace } : {})
  }
  const created = await ctx.client().request<CreatedRun>('POST', '/runs', { body })
  ctx.io.stderr.write(`nf-secrets: rerun ${created.runId}: ${created.secrets.length} secret(s) at ${safeText(sourcing.path)} until the command ends\n`)
  const argv = cmd.length > 0 ? cmd : ['bash', '.command.run']
  return await superviseCommand(ctx, created.runId, argv, { ...ctx.io.env, NF_SECRETS_RUN_ID: created.runId }, taskDir)
}

export const rerunCommands: Command[] = [
  {
    path: ['rerun'],
    usage: 'TASK_DIR [-w W] [-- CMD ...]',
    summary: 'debug a task after its run: the secrets its .command.run sources, at the path it names, while CMD ' +
      '(default: bash .command.run) runs in TASK_DIR; removed when CMD ends. Your own task dirs only',
    positionals: [1, Infinity],
    passthrough: true,
    run: rerun
  }
]
