// Least privilege by default (SPEC 11): `run`, `arm`, `launch` and `sbatch` ask the daemon for only the secrets the
// pipeline references. The pipeline is found here, in the CLI, and its files are read here, with the user's own
// rights (the daemon, perhaps root, never opens a user's pipeline files for this); daemon/nextflow/pipeline-scan.ts
// does the reading of Groovy. The daemon applies the names and refuses a run whose referenced names resolve to nothing
// (NFS_ERR_SECRET_MISSING), before anything is placed.
//
// What is scanned:
//  - run, launch: the wrapped command line, when it is `nextflow [global options] run SCRIPT ...` (-c/-config and -C
//    anywhere on it, as Nextflow takes them; OWNER/REPO through $NXF_HOME/assets and its manifest's mainScript;
//    a -main-script option is not followed: the dir's main.nf is scanned);
//  - arm, sbatch: `--pipeline PATH` (a script, a pipeline dir, or OWNER/REPO), else the launch dir (--dir, default
//    the current dir): its main.nf and nextflow.config;
//  - anything else (no nextflow run on the command line, no main.nf): no pipeline; every resolved secret is
//    provisioned and stderr says so.
import { closeSync, constants, fstatSync, openSync, readSync, statSync } from 'node:fs'
import { homedir } from 'node:os'
import { basename, join, resolve } from 'node:path'
import { scanPipeline, type ReadFile, type ScanRequest, type ScanResult } from '../nextflow/pipeline-scan.js'
import { COMMANDS as NF_COMMANDS, EXIT_OPTIONS, VALUE_OPTIONS } from './shell-init.js'
import type { CliIo, CommandContext, OptionSpecs } from './args.js'
import { safeText } from './output.js'

/** The options every provisioning command takes for least privilege. */
export const LEAST_PRIVILEGE_OPTIONS: OptionSpecs = {
  all: { type: 'boolean', description: 'every secret that resolves, not only those the pipeline references' },
  'allow-missing': { type: 'boolean', description: 'run even when a referenced secret resolves to nothing' }
}

/** The options of every command that provisions a run (run, arm, launch, sbatch). */
export const PROVISION_OPTIONS: OptionSpecs = {
  target: { type: 'string', description: 'where the secrets go: hpc, aws or both, comma-separated (default: the daemon\'s runs.defaultTargets)' },
  only: { type: 'string', description: 'exactly these secrets, comma-separated (wins over the pipeline scan and --all)' },
  ...LEAST_PRIVILEGE_OPTIONS
}

/** A pipeline file is source code: anything larger is not read (and not scanned). */
const MAX_FILE_BYTES = 4 * 1024 * 1024

/** CmdRun's options that take the next word as their value (read at 26.08); the rest are flags or `-k=v` words. */
const RUN_VALUE_OPTIONS = new Set(['-profile', '-r', '-revision', '-w', '-work-dir', '-params-file', '-name', '-main-script',
  '-main-script', '-hub', '-user', '-entry', '-qs', '-queue-size', '-bucket-dir', '-plugins', '-lib', '-e', '-env', '-executor', '-test',
  '-with-tower', '-with-wave', '-with-fusion', '-cache', '-dump-hashes', '-ansi-log', '-output-dir', '-stub-run'])

/**
 * The scan request of a command line, when it runs a pipeline: `nextflow [global options] run [options] SCRIPT ...`
 * (the first word may be a path to nextflow). null for any other command. Pure.
 */
export function scanRequestOf (cmd: readonly string[], cwd: string, env: NodeJS.ProcessEnv): ScanRequest | null {
  if (cmd.length === 0 || basename(cmd[0]!) !== 'nextflow') return null
  const args = cmd.slice(1)
  const configs: string[] = []
  let replaceConfig: string | undefined
  let i = 0
  // Global options, up to the command (the same walk as shell-init's isRunInvocation).
  for (; i < args.length; i++) {
    const a = args[i]!
    if ((VALUE_OPTIONS as readonly string[]).includes(a)) {
      if (i + 1 >= args.length) return null
      if (a === '-c' || a === '-config') configs.push(args[i + 1]!)
      if (a === '-C') replaceConfig = args[i + 1]!
      i++
    } else if (a === '-syslog') {
      const next = args[i + 1]
      if (next !== undefined && !next.startsWith('-') && !(NF_COMMANDS as readonly string[]).includes(next)) i++
    } else if ((EXIT_OPTIONS as readonly string[]).includes(a)) {
      return null
    } else if (!a.startsWith('-')) {
      if (a !== 'run') return null
      break
    }
  }
  if (args[i] !== 'run') return null
  let script: string | undefined
  for (i++; i < args.length; i++) {
    const a = args[i]!
    if (a === '-c' || a === '-config' || a === '-C') {
      if (i + 1 < args.length) {
        if (a === '-C') replaceConfig = args[i + 1]!
        else configs.push(args[i + 1]!)
      }
      i++
    } else if (RUN_VALUE_OPTIONS.has(a)) {
      i++
    } else if (a.startsWith('-')) {
      // a flag; `--param value` pairs of the pipeline come after the script, where nothing more is read
    } else if (script === undefined) {
      script = a
    }
  }
  const launchDir = resolve(cwd)
  return {
    launchDir,
    ...(script !== undefined ? { script } : {}),
    ...(configs.length > 0 ? { configs } : {}),
    ...(replaceConfig !== undefined ? { replaceConfig } : {}),
    nxfHome: nxfHome(env)
  }
}

export function nxfHome (env: NodeJS.ProcessEnv): string {
  return env.NXF_HOME !== undefined && env.NXF_HOME !== '' ? env.NXF_HOME : join(env.HOME ?? homedir(), '.nextflow')
}

/**
 * A regular file's text, read with this process's (the user's) rights: never a FIFO or device that would block or
 * never end, nothing over MAX_FILE_BYTES. null when absent or unreadable.
 */
export const readPipelineFile: ReadFile = (path) => {
  let fd: number
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch {
    return null
  }
  try {
    const st = fstatSync(fd)
    if (!st.isFile() || st.size > MAX_FILE_BYTES) return null
    const buf = Buffer.alloc(st.size)
    let off = 0
    while (off < buf.length) {
      const n = readSync(fd, buf, off, buf.length - off, off)
      if (n === 0) break
      off += n
    }
    return buf.subarray(0, off).toString('utf8')
  } catch {
    return null
  } finally {
    closeSync(fd)
  }
}

/** What the body of POST /runs gets for least privilege. */
export type NamesRequest = { names: string[], allowMissing?: true } | Record<string, never>

/**
 * The least-privilege part of a run request, and the note for stderr. `--only` (the caller's list, sent as `only`)
 * wins over everything; `--all` asks for every resolved secret; else the scan's names, or everything (said on
 * stderr) when no pipeline was found.
 */
export function leastPrivilege (ctx: CommandContext, req: ScanRequest | null, read: ReadFile = readPipelineFile): NamesRequest {
  const only = typeof ctx.options.only === 'string' && ctx.options.only !== ''
  if (only || ctx.options.all === true) return {}
  const scan: ScanResult | null = req === null ? null : scanPipeline(withDirScript(req), read)
  if (scan === null || !scan.found) {
    ctx.io.stderr.write(`nf-secrets: no pipeline found${req !== null ? ` (${safeText(req.script ?? join(req.launchDir, 'main.nf'))})` : ''}; every resolved secret is provisioned (--all)\n`)
    return {}
  }
  for (const f of scan.unreadable) ctx.io.stderr.write(`nf-secrets: warning: cannot read ${safeText(f)}, included by the pipeline; its secrets are not counted\n`)
  ctx.io.stderr.write(`nf-secrets: the pipeline references ${scan.names.length} secret(s)${scan.names.length > 0 ? `: ${scan.names.join(', ')}` : ''}; only those are provisioned (--all for every one)\n`)
  return { names: scan.names, ...(ctx.options['allow-missing'] === true ? { allowMissing: true as const } : {}) }
}

/** `nextflow run DIR` runs DIR/main.nf, and DIR's nextflow.config is the pipeline's. */
export function withDirScript (req: ScanRequest): ScanRequest {
  if (req.script === undefined) return req
  const path = resolve(req.launchDir, req.script)
  try {
    if (statSync(path).isDirectory()) return { ...req, script: join(path, 'main.nf') }
  } catch {
    // not a local path: OWNER/REPO, or absent (the scan says so)
  }
  return req
}

/** The scan request for `arm`, `sbatch` and `secrets resolve`: `--pipeline PATH`, else the launch dir. Pure. */
export function pipelineRequest (pipeline: string | undefined, launchDir: string, io: Pick<CliIo, 'cwd' | 'env'>): ScanRequest {
  const dir = resolve(io.cwd, launchDir)
  return { launchDir: dir, ...(pipeline !== undefined ? { script: pipeline } : {}), nxfHome: nxfHome(io.env) }
}
