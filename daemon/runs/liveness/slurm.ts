// Is the Slurm job that hosts a run's Nextflow head still there? Asks `squeue` first (cheap, active jobs
// only), then `scontrol show job` (also knows jobs that ended within MinJobAge). When Slurm itself cannot be
// asked (controller down, munge broken, binaries missing, timeout) the answer is 'unknown', never 'gone':
// an outage must not revoke the secrets of a run that may still be running.
import { execFile } from 'node:child_process'
import { nfsError } from '../../errors.js'

export type SlurmJobState = 'pending' | 'running' | 'gone' | 'unknown'

export interface SlurmProbeOptions {
  /** per command; default 10 s */
  timeoutMs?: number
  squeue?: string
  scontrol?: string
  /** the commands' environment (SLURM_CONF, ...); default the daemon's own */
  env?: NodeJS.ProcessEnv
}

/** What a finished command gave; `error` is set when it could not run at all or timed out. */
export interface CommandResult {
  code: number | null
  stdout: string
  stderr: string
  error?: string
}

// Job ids as squeue/scontrol accept them: plain, array task (123_4) or het component (123+1)
const JOB_ID_RE = /^\d{1,12}(?:_\d{1,9}|\+\d{1,4})?$/
// Slurm's reply when it was asked and the job is not (or no longer) known to the controller
const INVALID_JOB_RE = /Invalid job id specified/i

const PENDING = new Set(['PENDING', 'REQUEUED', 'REQUEUE_HOLD', 'REQUEUE_FED', 'RESV_DEL_HOLD', 'SPECIAL_EXIT'])
// COMPLETING and SUSPENDED count as running: processes of the job may still exist and may still read files
const RUNNING = new Set(['RUNNING', 'CONFIGURING', 'COMPLETING', 'SUSPENDED', 'STOPPED', 'SIGNALING', 'STAGE_OUT', 'RESIZING', 'POWER_UP_NODE', 'UPDATE_DB'])
const GONE = new Set(['COMPLETED', 'CANCELLED', 'FAILED', 'TIMEOUT', 'PREEMPTED', 'NODE_FAIL', 'BOOT_FAIL', 'DEADLINE', 'OUT_OF_MEMORY', 'REVOKED'])

/** One job state name to our four answers; a name we do not know is 'unknown', never 'gone'. */
export function classifyState (raw: string): SlurmJobState {
  // tolerate flag suffixes some versions append (`CANCELLED+`, `RUNNING by 0`)
  const name = raw.trim().toUpperCase().split(/[\s+]/)[0] ?? ''
  if (PENDING.has(name)) return 'pending'
  if (RUNNING.has(name)) return 'running'
  if (GONE.has(name)) return 'gone'
  return 'unknown'
}

/** Several states (an array job's tasks): any running wins, then pending, then unknown; gone only if all are. */
export function combineStates (states: SlurmJobState[]): SlurmJobState {
  for (const s of ['running', 'pending', 'unknown'] as const) if (states.includes(s)) return s
  return states.length > 0 ? 'gone' : 'unknown'
}

/** squeue -h -j ID -o %T. null means "ask scontrol": not in the active queue, or squeue could not tell. */
export function parseSqueue (r: CommandResult): SlurmJobState | null {
  if (r.error !== undefined || r.code !== 0) return null
  const states = r.stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '')
  if (states.length === 0) return null
  return combineStates(states.map(classifyState))
}

/** scontrol show job ID: `JobState=X` per job record, or "Invalid job id specified" once it is purged. */
export function parseScontrol (r: CommandResult): SlurmJobState {
  if (r.error !== undefined) return 'unknown'
  if (r.code !== 0) return INVALID_JOB_RE.test(r.stderr + r.stdout) ? 'gone' : 'unknown'
  const states = [...r.stdout.matchAll(/\bJobState=(\S+)/g)].map((m) => classifyState(m[1] ?? ''))
  return combineStates(states)
}

function run (file: string, args: string[], opts: SlurmProbeOptions): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(file, args, {
      timeout: opts.timeoutMs ?? 10_000,
      killSignal: 'SIGKILL',
      maxBuffer: 1024 * 1024,
      env: opts.env ?? process.env,
      encoding: 'utf8'
    }, (err, stdout, stderr) => {
      if (err === null) return resolve({ code: 0, stdout, stderr })
      const e = err as NodeJS.ErrnoException & { killed?: boolean, code?: number | string }
      // A numeric code is the command's exit status; anything else (ENOENT, a timeout kill) means not asked.
      if (typeof e.code === 'number' && e.killed !== true) return resolve({ code: e.code, stdout, stderr })
      resolve({ code: null, stdout, stderr, error: e.killed === true ? 'timeout' : String(e.code ?? e.message) })
    })
  })
}

export async function slurmJobState (jobId: string, opts: SlurmProbeOptions = {}): Promise<SlurmJobState> {
  // validated so an id can never be read as an option by squeue's argument parser
  if (!JOB_ID_RE.test(jobId)) throw nfsError('NFS_ERR_BAD_REQUEST', ['Slurm job id must look like 123, 123_4 or 123+1'])
  const sq = parseSqueue(await run(opts.squeue ?? 'squeue', ['-h', '-j', jobId, '-o', '%T'], opts))
  if (sq !== null) return sq
  return parseScontrol(await run(opts.scontrol ?? 'scontrol', ['show', 'job', jobId], opts))
}
