// One run's check for the monitor: what this node may read of it, what the signals say, and the end that follows. A
// run must look dead on two checks in a row, at least one liveness interval apart, before it is ended (history is
// rewritten in place and the session lock is taken a moment after the history line, so one odd read must not end a
// healthy run); a history line, Slurm's own record or a check at reconcile (`immediate`) ends it at once.
//
// The interval is counted in the monitor's passes, not in checks: a file event checks a run too, and two events 90 ms
// apart once ended a fresh auto-run as "process gone" before its Nextflow had taken the session lock. A dead reading
// made by pass N's own round, while N is still the latest pass, may be confirmed from pass N + 1 on; any other (an
// event's, or a late round of N that ends after N + 1 began: slow probes on a loaded node, when the next pass queues
// one more round right behind it) from the pass after the next one. Either way a whole interval lies between the two
// readings, and tests that drive passes by hand (Monitor.tick) still end a dead run in two passes. A suspicion not
// confirmed within a pass of its due pass (the run was another node's meanwhile, or not checked) starts again.
import { isTerminal, type RunRecord } from '../types.js'
import type { EventBus } from '../events.js'
import type { Logger } from '../logger.js'
import type { RunLedger } from '../store/run-ledger.js'
import type { RunOwnership } from './ownership.js'
import type { Probes } from './probes.js'
import type { EndRequest, EndState, RunLifecycle } from './service.js'
import { dollarWarning, intentPending, isExpired, verdict } from './run-rules.js'
import { forgetUntold, tellRecorded, warnRun, type UntoldWarnings } from './warn.js'
import { sessionSignals } from './liveness/session.js'
import { endSignals } from './liveness/reach.js'
import { hostDeadEnd } from './host-dead.js'

/** the end reason of an intent left by an arm that was answered with an error (`runs show` prints it) */
export const INTENT_UNANSWERED = 'intent never answered: its arm failed before the secrets were placed'

/** End a run here and queue its revoke (Monitor's end). */
export type EndHere = (run: RunRecord, state: EndState, reason: string, exit?: EndRequest, onlyIf?: (run: RunRecord) => boolean) => Promise<void>

/** What a check reads and calls: the monitor's own deps (MonitorDeps) fit. */
export interface RunCheckDeps {
  ledger: RunLedger
  events: EventBus
  ownership: RunOwnership
  probes: Probes
  /** this node's host: the head's host when a run's pid and session lock are this node's to read */
  host: string
  lifecycle: Pick<RunLifecycle, 'markStarted' | 'hostHolds'> & {
    /** is this node's arm of the run placing it now (RunManager.provisioning) */
    provisioning: (runId: string) => boolean
  }
}

/** Where a check stands among the monitor's passes (see the file's head). */
export interface Reading {
  /** the pass whose round made this check; null for an event's check */
  launchedBy: number | null
  /** passes started so far, read when the reading is counted */
  passes: () => number
}

export class RunCheck {
  readonly #deps: RunCheckDeps
  readonly #log: Logger
  readonly #end: EndHere
  // The runs that looked dead on their last check, with the first pass whose dead reading may end them (file's head).
  readonly #suspect = new Map<string, number>()
  // Run warnings whose write failed as "cannot write now" but may have been applied all the same (warn.ts).
  readonly #untold: UntoldWarnings = new Map()

  constructor (deps: RunCheckDeps, log: Logger, end: EndHere) {
    this.#deps = deps
    this.#log = log
    this.#end = end
  }

  /** After a pass: the untold warnings (warn.ts) and the dead readings of runs that are over or gone are forgotten. */
  forgetEnded (): void {
    const { ledger } = this.#deps
    const live = (id: string): boolean => { const r = ledger.get(id); return r !== undefined && !isTerminal(r.state) }
    forgetUntold(this.#untold, live)
    // A suspect ended by another way (a revoke, another node) is forgotten too.
    for (const id of this.#suspect.keys()) if (!live(id)) this.#suspect.delete(id)
  }

  async check (run: RunRecord, now: Date, immediate: boolean, reading: Reading): Promise<void> {
    const { host, ownership } = this.#deps
    if (ownership.owns(run) && this.#stranded(run)) {
      // Checked again inside the ledger's write: the arm may have recorded its placements since this read.
      await this.#end(run, 'failed', INTENT_UNANSWERED, {}, r => this.#stranded(r))
      return
    }
    // What this node may read of the run (reach.ts): nothing of another node's run, only the shared files, Slurm and
    // the TTL of a run adopted from another host, everything of a run whose head runs here.
    const seen = endSignals(run, { host, owns: ownership.owns(run) })
    if (seen.size === 0) {
      this.#suspect.delete(run.runId)
      return
    }
    const read = { pid: seen.has('pid'), lock: seen.has('lock') }
    let signals = await sessionSignals(this.#deps.probes, run, host, read)
    // The history is read before the log: a Goodbye read with the line still `-` may be an update landing between
    // the two reads (the line is written first), so one more reading settles which ends the run.
    if (signals.goodbye !== null && signals.history !== 'OK' && signals.history !== 'ERR') signals = await sessionSignals(this.#deps.probes, run, host, read)
    // An adopted run whose head was a process of a host with no live node for hostDeadAfterSeconds (host-dead.ts).
    const hostDead = seen.has('hostDead') ? hostDeadEnd(run, host, h => ownership.hostAlive(h)) : null
    if (this.#untold.size > 0) tellRecorded(this.#deps, this.#log, run, this.#untold)
    const warning = dollarWarning(run, signals.version)
    if (warning !== null) await warnRun(this.#deps, this.#log, run.runId, warning, this.#untold)
    if (run.state === 'armed') {
      if (signals.history !== null) {
        await this.#deps.lifecycle.markStarted(run.runId, { runName: signals.runName, pid: signals.pid })
        return await this.check(this.#deps.ledger.get(run.runId)!, now, immediate, reading)
      }
      if (isExpired(run, now)) {
        // Checked again inside the ledger's write: a bind to a Slurm job (which clears the TTL) may land meanwhile.
        await this.#end(run, 'expired', 'no start seen within the TTL', {}, r => isExpired(r, now))
      } else if (signals.slurm === 'gone') {
        await this.#end(run, 'expired', 'the Slurm job ended before Nextflow started')
      } else if (hostDead !== null) {
        await this.#end(run, hostDead.state, hostDead.reason)
      }
      return
    }
    if (signals.runName !== null && run.runName === null) await this.#deps.lifecycle.markStarted(run.runId, { runName: signals.runName, pid: signals.pid })
    // The wrapper of a `run`, or the child of a `launch`, counts as alive too.
    // `Execution complete -- Goodbye` is logged after the history update: with the line still `-` it ends the run too.
    if (signals.goodbye !== null && signals.history !== 'OK' && signals.history !== 'ERR') {
      this.#suspect.delete(run.runId)
      await this.#end(run, signals.goodbye.aborted ? 'failed' : 'completed', 'log Goodbye')
      return
    }
    // A launched command's host ends its run with the command's own status (it polls a command adopted after a
    // restart every second): a dead pid read here first would end it as killed, without that status.
    if (seen.has('launched') && run.mode === 'launch' && this.#deps.lifecycle.hostHolds(run.runId)) {
      this.#suspect.delete(run.runId)
      return
    }
    const probes = [...signals.probes]
    if (seen.has('pid') && run.pid !== null) probes.push(await this.#deps.probes.processAlive(run.pid, run.pidStart))
    const wrapperExit = run.exitCode !== null || run.signal !== null ? { exitCode: run.exitCode, signal: run.signal } : null
    const v = verdict({ history: signals.history, probes }, wrapperExit)
    if (v.kind !== 'ended') {
      this.#suspect.delete(run.runId)
      // Nothing visible from here ends it (an adopted head on another host): only its host's death does.
      if (hostDead !== null) await this.#end(run, hostDead.state, hostDead.reason)
      return
    }
    // A history line, or Slurm's own record that the job ended, is no odd read: it ends the run at once.
    const clean = v.reason.startsWith('history') || signals.slurm === 'gone'
    if (!clean && !immediate) {
      const now = reading.passes()
      const confirmFrom = this.#suspect.get(run.runId)
      // This reading as the first: from which pass a second may confirm it.
      const own = now + (reading.launchedBy === now ? 1 : 2)
      if (confirmFrom === undefined || now > confirmFrom + 1) {
        this.#suspect.set(run.runId, own)
        return
      }
      if (now < confirmFrom) {
        // Every reading since the first was dead too, so this one may count as the first: an event's reading during a
        // pass, then that pass's own round, is confirmed by the next pass as the round alone would be (it waited one
        // pass more, and dead-readings.test.ts's "two passes in a row" failed when a watcher event came mid-pass).
        if (own < confirmFrom) this.#suspect.set(run.runId, own)
        return
      }
    }
    this.#suspect.delete(run.runId)
    await this.#end(run, v.state, v.reason, wrapperExit !== null ? { ...(run.exitCode !== null ? { exitCode: run.exitCode } : {}), ...(run.signal !== null ? { signal: run.signal } : {}) } : {})
  }

  /**
   * An intent no arm of this node is placing any more, with a target still `provisioning`: the arm was answered with
   * an error after its insert was sent. In a cluster the insert can commit after that answer (every try of the client
   * failed, and so did the read-back: own-write.ts), or its commit reach this node's mirror only then; on one node an
   * undo that could not be recorded leaves the same. Left alone it stays live until its TTL, a pid seen gone or a
   * restart, and counts against the user's liveRunsPerUser on every node. What the arm's first target prepared was
   * discarded when the intent failed (Target.provision's `ready`), and its revoke removes whatever else is there.
   */
  #stranded (run: RunRecord): boolean {
    return intentPending(run) && !this.#deps.lifecycle.provisioning(run.runId)
  }
}
