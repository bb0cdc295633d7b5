// Stopping a launched run's command before its secrets go (RunHost.stop): SIGTERM, then SIGKILL after the grace
// period, to the command's session, or through systemd for a command in a transient unit.
import type { Logger } from '../logger.js'
import type { Probes } from '../runs/probes.js'
import type { RunQueries } from '../runs/service.js'
import { signalSession } from './process-group.js'
import type { LaunchSession } from './session.js'
import { signalUnit } from './transient-unit.js'

export interface StopDeps {
  runs: Pick<RunQueries, 'run'>
  probes: Pick<Probes, 'processAlive'>
  /** systemd-run, when commands run in transient units of their own */
  systemdRun: string | null
  killGraceSeconds: number
  log: Logger
}

async function within (p: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<false>(resolve => { timer = setTimeout(() => resolve(false), ms) })
  const done = await Promise.race([p.then(() => true as const), timeout])
  clearTimeout(timer)
  return done
}

export class CommandStops {
  readonly #deps: StopDeps
  /** stops under way, by run */
  readonly #stops = new Map<string, Promise<void>>()

  constructor (deps: StopDeps) {
    this.#deps = deps
  }

  /**
   * One stop per command at a time: a second caller (the revoke of a run ended elsewhere, beside the host's own
   * follower of the change feed) waits for the first, so that the revoke comes after the command is gone.
   */
  async stop (s: LaunchSession): Promise<void> {
    const running = this.#stops.get(s.runId)
    if (running !== undefined) return await running
    const p = this.#stop(s).finally(() => { this.#stops.delete(s.runId) })
    this.#stops.set(s.runId, p)
    return await p
  }

  async #stop (s: LaunchSession): Promise<void> {
    const runId = s.runId
    const log = this.#deps.log
    s.stopping = true
    log.info({ runId, pid: s.pid }, 'stopping the command')
    if (!(await this.#signal(s, 'SIGTERM'))) {
      log.warn({ runId, pid: s.pid }, 'the pid is no longer the command recorded for this run; not signalled')
      s.processGone()
      return
    }
    if (await within(s.gone, this.#deps.killGraceSeconds * 1000)) return
    log.warn({ runId, pid: s.pid }, 'the command outlived its grace period; killing it')
    await this.#signal(s, 'SIGKILL')
    await within(s.gone, 5000)
  }

  /**
   * Signal a session. Our own child's session id stays ours while any process of it lives (the kernel does not hand
   * out a pid still in use as a session or group id). An adopted run's wrapper is not our child: once it is gone its
   * pid can be any process of any user (adopted runs are checked once a second), so it is signalled only while the
   * pid is still the process the run recorded, by its start time; without a recorded start time, not at all.
   * False when it was not signalled for that reason: the command is gone. A command in a transient unit is signalled
   * through systemd, by the unit's name (a signal to its systemd-run would only let it go).
   */
  async #signal (s: LaunchSession, signal: NodeJS.Signals): Promise<boolean> {
    if (this.#deps.systemdRun !== null && await signalUnit(s.runId, signal)) return true
    if (!s.live) {
      const run = this.#deps.runs.run(s.runId)
      const start = run !== undefined && run.pid === s.pid ? run.pidStart : null
      if (start === null || !(await this.#deps.probes.processAlive(s.pid, start))) return false
    }
    await signalSession(s.pid, signal)
    return true
  }
}
