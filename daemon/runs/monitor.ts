// The monitor: reconciles the ledger at start and then, on a timer, ends runs whose process, session or Slurm job is
// gone, expires armed runs past their TTL, retries failed revokes, and prunes old terminal runs. The watcher makes
// most ends immediate; the monitor is the floor that holds when no file event arrives (a SIGKILL, a compute node).
import { isTerminal, type RunRecord } from '../types.js'
import type { Logger } from '../logger.js'
import type { RunManager } from './manager.js'
import { dollarWarning, isExpired, verdict } from './policy.js'
import { logPidOnHost } from './observe.js'
import type { Probes } from './probes.js'
import { warnRun } from './warn.js'
import type { SlurmJobState } from './liveness/slurm.js'

/**
 * Is the run's Nextflow session alive, apart from the wrapper? The session lock held, the Nextflow pid of our
 * session alive (from the log on this host, or a `-bg` pid file written since the run began), or its Slurm job.
 */
export async function sessionAlive (probes: Probes, run: RunRecord, host: string): Promise<boolean> {
  const signals = await sessionSignals(probes, run, host)
  return signals.probes.some(p => p === true) && signals.history !== 'OK' && signals.history !== 'ERR'
}

async function sessionSignals (probes: Probes, run: RunRecord, host: string): Promise<{ history: 'running' | 'OK' | 'ERR' | null, probes: Array<boolean | null>, slurm: SlurmJobState | null, runName: string | null, pid: number | null, goodbye: { aborted: boolean } | null, version: string | null }> {
  const obs = await probes.observe({ launchDir: run.launchDir, uid: run.uid, sessionId: run.sessionId, historyMark: run.historyMark, runName: run.runName })
  const out: Array<boolean | null> = []
  const sessionId = obs.history?.sessionId ?? run.sessionId
  out.push((await probes.sessionLock(run.launchDir, sessionId)).held)
  let pid = logPidOnHost(obs.log, host, run.slurmJobId !== null)
  if (pid !== null) out.push(await probes.processAlive(pid, null))
  if (obs.pidFile !== null && obs.pidFile.mtimeMs >= Date.parse(run.createdAt) - 2000) {
    out.push(await probes.processAlive(obs.pidFile.pid, null))
    pid ??= obs.pidFile.pid
  }
  // Slurm's latest answer (the pass asks it once for all jobs; see #askSlurm): reading it never waits on Slurm.
  const slurm = run.slurmJobId !== null ? probes.slurmJob(run.slurmJobId) : null
  if (slurm !== null) out.push(slurm === 'unknown' ? null : slurm !== 'gone')
  const goodbye = obs.log?.goodbye === true ? { aborted: obs.log.aborted } : null
  return { history: obs.history?.status ?? null, probes: out, slurm, runName: obs.history?.runName ?? obs.log?.runName ?? null, pid, goodbye, version: obs.log?.version ?? null }
}

export interface MonitorOptions {
  intervalMs: number
  retentionDays: number
}

export class Monitor {
  readonly #runs: RunManager
  readonly #probes: Probes
  readonly #log: Logger
  readonly #opts: MonitorOptions
  #timer: NodeJS.Timeout | null = null
  #ticking: Promise<void> | null = null
  // A run must look dead on two ticks in a row before it is ended: history is rewritten in place and the session
  // lock is taken a moment after the history line, so one odd read must not end a healthy run.
  readonly #suspect = new Set<string>()
  // One check of a run at a time: the timer's pass and the watcher's checkRun must not both count a dead reading.
  readonly #checking = new Map<string, Promise<void>>()
  // The one question to Slurm that is out, if any (see #askSlurm).
  #slurmAsk: Promise<void> | null = null
  // Whether Slurm answered the last question: its outages are logged when they begin and end, not on every pass.
  #slurmAnswered = true

  constructor (runs: RunManager, probes: Probes, logger: Logger, opts: MonitorOptions) {
    this.#runs = runs
    this.#probes = probes
    this.#log = logger.child({ room: 'monitor' })
    this.#opts = opts
  }

  start (): void {
    if (this.#timer !== null) return
    this.#timer = setInterval(() => { void this.tick() }, this.#opts.intervalMs)
    this.#timer.unref()
  }

  async stop (): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
    await this.#ticking
    await this.#slurmAsk
    // A last try for records the revoke path kept in memory (a full disk); what still fails is redone after a start.
    await this.#safe('-', () => this.#runs.revoker.retryRecords())
  }

  /** One pass; overlapping calls share the pass in progress. */
  tick (): Promise<void> {
    this.#ticking ??= this.#tick().finally(() => { this.#ticking = null })
    return this.#ticking
  }

  /** Reconcile at start: the same pass, with no grace for runs found dead (the daemon was down meanwhile). */
  async reconcile (): Promise<void> {
    const { ledger } = this.#runs.deps
    // A run whose provisioning was interrupted by the crash never reached its caller: it ends here.
    for (const run of ledger.all()) {
      if (!isTerminal(run.state) && Object.values(run.targets).some(t => t?.state === 'provisioning')) {
        await this.#safe(run.runId, () => this.#runs.end(run.runId, 'failed', 'provisioning interrupted by a daemon restart'))
      }
    }
    await this.#tick(true)
    this.#log.info({ runs: ledger.all().length }, 'reconciled')
  }

  /** Check one live run now (the watcher calls this on a file event); serialised with the timer's pass. */
  async checkRun (runId: string): Promise<void> {
    const run = this.#runs.deps.ledger.get(runId)
    if (run === undefined || isTerminal(run.state)) return
    await this.#checkOnce(runId, false)
  }

  async #checkOnce (runId: string, immediate: boolean): Promise<void> {
    const prev = this.#checking.get(runId) ?? Promise.resolve()
    const next = prev.then(async () => {
      // Re-read: the run may have ended while this check waited for the previous one.
      const run = this.#runs.deps.ledger.get(runId)
      if (run === undefined || isTerminal(run.state)) return
      await this.#safe(runId, () => this.#check(run, this.#runs.deps.clock(), immediate))
    })
    this.#checking.set(runId, next)
    try {
      await next
    } finally {
      if (this.#checking.get(runId) === next) this.#checking.delete(runId)
    }
  }

  async #safe (runId: string, fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn()
    } catch (err) {
      this.#log.error({ runId, err }, 'monitor step failed')
    }
  }

  async #tick (immediate = false): Promise<void> {
    const { ledger, clock } = this.#runs.deps
    const now = clock()
    // Records the revoke path kept in memory while the disk was full go out first, once it has room again.
    await this.#safe('-', () => this.#runs.revoker.retryRecords())
    this.#askSlurm()
    for (const run of ledger.all()) {
      if (isTerminal(run.state)) continue
      await this.#checkOnce(run.runId, immediate)
    }
    for (const run of this.#runs.revoker.due(clock())) {
      await this.#safe(run.runId, () => this.#runs.revoker.revoke(run.runId, false))
    }
    await this.#safe('-', () => this.#prune(now))
  }

  /**
   * Ask Slurm about the jobs of all live runs in one call, off the pass: the pass reads the latest answers and never
   * waits on Slurm, so a slow or stuck controller (its call is killed at a deadline) delays no other run. While a
   * call is out no second one is made. When the answer comes, the runs whose job it reports gone are checked at once,
   * so a job's end is acted on within a pass of it.
   */
  #askSlurm (): void {
    if (this.#slurmAsk !== null) return
    const bound = this.#runs.deps.ledger.all().filter(r => !isTerminal(r.state) && r.slurmJobId !== null)
    if (bound.length === 0) return
    this.#slurmAsk = (async () => {
      const answered = await this.#probes.slurmRefresh(bound.map(r => r.slurmJobId!))
      if (answered !== this.#slurmAnswered) {
        this.#slurmAnswered = answered
        if (answered) this.#log.info({ runs: bound.length }, 'Slurm answers again')
        else this.#log.warn({ runs: bound.length }, 'Slurm did not answer (squeue failed or passed its deadline); runs tied to jobs keep their last known state')
      }
      if (!answered) return
      for (const r of bound) {
        if (this.#probes.slurmJob(r.slurmJobId!) === 'gone') await this.#checkOnce(r.runId, false)
      }
    })().catch((err: unknown) => { this.#log.error({ err }, 'asking Slurm failed') }).finally(() => { this.#slurmAsk = null })
  }

  async #check (run: RunRecord, now: Date, immediate: boolean): Promise<void> {
    const host = this.#runs.deps.host
    let signals = await sessionSignals(this.#probes, run, host)
    // The history is read before the log: a Goodbye read with the line still `-` may be an update landing between
    // the two reads (the line is written first), so one more reading settles which ends the run.
    if (signals.goodbye !== null && signals.history !== 'OK' && signals.history !== 'ERR') signals = await sessionSignals(this.#probes, run, host)
    const warning = dollarWarning(run, signals.version)
    if (warning !== null) await warnRun(this.#runs.deps, this.#log, run.runId, warning)
    if (run.state === 'armed') {
      if (signals.history !== null) {
        await this.#runs.markStarted(run.runId, { runName: signals.runName, pid: signals.pid })
        return await this.#check(this.#runs.deps.ledger.get(run.runId)!, now, immediate)
      }
      if (isExpired(run, now)) {
        // Checked again inside the ledger's write: a bind to a Slurm job (which clears the TTL) may land meanwhile.
        await this.#runs.end(run.runId, 'expired', 'no start seen within the TTL', {}, r => isExpired(r, now))
      } else if (signals.slurm === 'gone') {
        await this.#runs.end(run.runId, 'expired', 'the Slurm job ended before Nextflow started')
      }
      return
    }
    if (signals.runName !== null && run.runName === null) await this.#runs.markStarted(run.runId, { runName: signals.runName, pid: signals.pid })
    // The wrapper of a `run`, or the child of a `launch`, counts as alive too.
    // `Execution complete -- Goodbye` is logged after the history update: with the line still `-` it ends the run too.
    if (signals.goodbye !== null && signals.history !== 'OK' && signals.history !== 'ERR') {
      this.#suspect.delete(run.runId)
      await this.#runs.end(run.runId, signals.goodbye.aborted ? 'failed' : 'completed', 'log Goodbye')
      return
    }
    // A launched command's host ends its run with the command's own status (it polls a command adopted after a
    // restart every second): a dead pid read here first would end it as killed, without that status.
    if (run.mode === 'launch' && this.#runs.hostHolds(run.runId)) {
      this.#suspect.delete(run.runId)
      return
    }
    const probes = [...signals.probes]
    if (run.pid !== null) probes.push(await this.#probes.processAlive(run.pid, run.pidStart))
    const wrapperExit = run.exitCode !== null || run.signal !== null ? { exitCode: run.exitCode, signal: run.signal } : null
    const v = verdict({ history: signals.history, probes }, wrapperExit)
    if (v.kind !== 'ended') {
      this.#suspect.delete(run.runId)
      return
    }
    // A history line, or Slurm's own record that the job ended, is no odd read: it ends the run at once.
    const clean = v.reason.startsWith('history') || signals.slurm === 'gone'
    if (!clean && !immediate && !this.#suspect.has(run.runId)) {
      this.#suspect.add(run.runId)
      return
    }
    this.#suspect.delete(run.runId)
    await this.#runs.end(run.runId, v.state, v.reason, wrapperExit !== null ? { ...(run.exitCode !== null ? { exitCode: run.exitCode } : {}), ...(run.signal !== null ? { signal: run.signal } : {}) } : {})
  }

  async #prune (now: Date): Promise<void> {
    const { ledger } = this.#runs.deps
    const horizon = now.getTime() - this.#opts.retentionDays * 86_400_000
    const old = ledger.all().filter(r =>
      isTerminal(r.state) && r.endedAt !== null && Date.parse(r.endedAt) < horizon &&
      Object.values(r.targets).every(t => t === undefined || t.state === 'revoked'))
    if (old.length > 0) {
      const n = await ledger.remove(old.map(r => r.runId))
      this.#log.info({ pruned: n }, 'pruned terminal runs past retention')
    }
  }
}
