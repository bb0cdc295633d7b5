// Slurm's own record of the jobs that host runs' Nextflow heads: their state and their owner, for every job asked
// about in ONE `squeue` call (`-t all` also lists jobs that ended within MinJobAge, which is what `scontrol show job`
// was once asked for). When Slurm cannot be asked (controller down, munge broken, binaries missing, the deadline
// passed) the answer is "not asked" and every job reads 'unknown', never 'gone': an outage must not revoke the
// secrets of a run that may still be running.
import { runChild } from '../../children/run-child.js'

export type SlurmJobState = 'pending' | 'running' | 'gone' | 'unknown'

export interface SlurmJob {
  state: SlurmJobState
  /** the job's user as Slurm records it; null when Slurm does not know the job */
  uid: number | null
}

export interface SlurmQueryOptions {
  /** per squeue call; default 10 s, after which it is killed and the pass reads 'unknown' */
  deadlineMs?: number
  squeue?: string
  /** the command's environment; default slurmEnv() of the daemon's own */
  env?: NodeJS.ProcessEnv
}

/** What a finished command gave; `error` is set when it could not run at all or passed its deadline. */
export interface CommandResult {
  code: number | null
  stdout: string
  stderr: string
  error?: string
}

// Job ids as the API takes them: plain (SLURM_JOB_ID, also an array task's own id) or an array task (123_4).
export const JOB_ID_RE = /^\d{1,12}(?:_\d{1,9})?$/
// Slurm's reply when a single asked id is not (or no longer) known to the controller; a list gets exit 0 instead.
const INVALID_JOB_RE = /Invalid job id specified/i
// At most this many ids per squeue call, so one argument stays far below the kernel's 128 KiB per-argument cap.
export const IDS_PER_CALL = 2000
export const SQUEUE_FORMAT = '%i|%A|%F|%K|%T|%U'

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

/** Does an array's task field (`%K`: `2`, `[1-3]`, `1,4-9:2%5`) include task k? */
export function taskRangeHas (field: string, k: number): boolean {
  for (const part of field.replace(/^\[|\]$/g, '').replace(/%\d+$/, '').split(',')) {
    const m = /^(\d+)(?:-(\d+)(?::(\d+))?)?$/.exec(part)
    if (m === null) continue
    const lo = Number(m[1])
    const hi = m[2] !== undefined ? Number(m[2]) : lo
    const step = m[3] !== undefined ? Number(m[3]) : 1
    if (k >= lo && k <= hi && (k - lo) % step === 0) return true
  }
  return false
}

interface Row { id: string, jobId: string, arrayJobId: string, tasks: string, state: string, uid: number }

function rowsOf (stdout: string): Row[] {
  const rows: Row[] = []
  for (const line of stdout.split('\n')) {
    const f = line.trim().split('|')
    if (f.length !== 6 || !/^\d+$/.test(f[5]!)) continue
    rows.push({ id: f[0]!, jobId: f[1]!, arrayJobId: f[2]!, tasks: f[3]!, state: f[4]!, uid: Number(f[5]) })
  }
  return rows
}

/** The rows that belong to an asked id: a plain id is a job or a whole array; `N_k` one task of array N. */
function belongs (asked: string, r: Row): boolean {
  const [base, task] = asked.split('_')
  if (task === undefined) return r.jobId === base || r.arrayJobId === base
  return r.id === asked || (r.arrayJobId === base && taskRangeHas(r.tasks, Number(task)))
}

/**
 * squeue's answer for the asked ids, or null when Slurm was not asked (the caller reads 'unknown'). An id squeue
 * does not list is one the controller does not know: never submitted, or ended and purged: 'gone'. Pure.
 */
export function parseQueue (r: CommandResult, asked: readonly string[]): Map<string, SlurmJob> | null {
  if (r.error !== undefined) return null
  const gone = (): Map<string, SlurmJob> => new Map(asked.map(id => [id, { state: 'gone', uid: null }]))
  if (r.code !== 0) return asked.length === 1 && INVALID_JOB_RE.test(r.stderr + r.stdout) ? gone() : null
  const rows = rowsOf(r.stdout)
  const out = new Map<string, SlurmJob>()
  for (const id of asked) {
    const mine = rows.filter(row => belongs(id, row))
    const uids = new Set(mine.map(row => row.uid))
    out.set(id, mine.length === 0
      ? { state: 'gone', uid: null }
      : { state: combineStates(mine.map(row => classifyState(row.state))), uid: uids.size === 1 ? [...uids][0]! : null })
  }
  return out
}

export function squeueArgs (ids: readonly string[]): string[] {
  return ['-h', '-t', 'all', '-j', ids.join(','), '-o', SQUEUE_FORMAT]
}

/** What a Slurm client needs of the daemon's environment: where the binaries and the config are, and nothing else. */
export function slurmEnv (env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = { PATH: env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' }
  for (const k of ['SLURM_CONF', 'SLURM_CLUSTERS']) if (env[k] !== undefined) out[k] = env[k]
  return out
}

async function squeue (ids: readonly string[], opts: SlurmQueryOptions): Promise<CommandResult> {
  let r
  try {
    r = await runChild(opts.squeue ?? 'squeue', squeueArgs(ids), { deadlineMs: opts.deadlineMs ?? 10_000, env: slurmEnv(opts.env) })
  } catch (err) {
    // could not be started (ENOENT, EMFILE): Slurm was not asked
    return { code: null, stdout: '', stderr: '', error: (err as NodeJS.ErrnoException).code ?? 'spawn failed' }
  }
  if (r.timedOut) return { code: null, stdout: '', stderr: '', error: 'deadline' }
  if (r.code === null) return { code: null, stdout: r.stdout, stderr: r.stderr, error: r.signal ?? r.stderr }
  return { code: r.code, stdout: r.stdout, stderr: r.stderr }
}

/**
 * Ask Slurm about every id at once (one call per IDS_PER_CALL ids, so one call for any realistic number of runs).
 * Ids must match JOB_ID_RE (the API checks): validated again so that none can ever be read as an option.
 */
export async function querySlurmJobs (ids: readonly string[], opts: SlurmQueryOptions = {}): Promise<Map<string, SlurmJob> | null> {
  const valid = [...new Set(ids)].filter(id => JOB_ID_RE.test(id))
  const out = new Map<string, SlurmJob>()
  for (let i = 0; i < valid.length; i += IDS_PER_CALL) {
    const chunk = valid.slice(i, i + IDS_PER_CALL)
    const answer = parseQueue(await squeue(chunk, opts), chunk)
    if (answer === null) return null
    for (const [id, job] of answer) out.set(id, job)
  }
  return out
}
