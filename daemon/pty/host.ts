// PtyHost: the third door into the run lifecycle. It starts a `launch` run's command under a pseudo-terminal as the
// caller, feeds its output to the replay ring, the output log and attached clients, and turns the command's end
// (or `runs revoke`) into the lifecycle's calls. Launched runs outlive the daemon: a restarted daemon adopts them
// from the ledger and ends them, with their recorded status, when they go.
import type { Config } from '../config.js'
import { isCoded, nfsError } from '../errors.js'
import type { Logger } from '../logger.js'
import type { Probes } from '../runs/probes.js'
import type { CreateRunRequest, CreatedRun, RunHost, RunLifecycle } from '../runs/service.js'
import { isTerminal, type Caller, type RunRecord } from '../types.js'
import { CommandStops } from './command-stop.js'
import { LaunchFiles } from './launch-files.js'
import { findSetpriv, precheck } from './precheck.js'
import { LaunchSession, type AttachClient } from './session.js'
import { defaultSpawn, spawnCommand, type SpawnFn } from './spawn-command.js'
import { detectSystemdRun } from './transient-unit.js'
import { exitFromPty, exitFromStatus, parseStatusFile, type ExitStatus } from './wrapper.js'

export interface PtyHostDeps {
  runs: RunLifecycle
  config: Config
  logger: Logger
  probes: Probes
  /** the daemon's own uid: 0 means children must drop to the caller */
  daemonUid: number
  clock: () => Date
  /** node-pty's spawn; replaceable so a test can make the spawn itself fail */
  spawn?: SpawnFn
  shell?: string
  setpriv?: string | null
  /** how often adopted runs (no terminal, not our children) are checked */
  pollMs?: number
  /** systemd-run, when commands run in transient units of their own (transient-unit.ts); default: detected */
  systemdRun?: string | null
}

/** What the attach endpoint gets: the session's input side and the way out. */
export interface Attachment {
  input (data: string): void
  resize (cols: number, rows: number): void
  detach (): void
}

// An ended session stays a while, so a client that attaches just after a quick command still sees its output.
const KEEP_ENDED_MS = 10 * 60_000
const PRUNE_EVERY_MS = 6 * 3600_000

function ownerOf (run: RunRecord): Caller {
  return { user: run.user, uid: run.uid, gid: run.gid, pid: 0, groups: [], gids: [], isAdmin: false }
}

export class PtyHost implements RunHost {
  readonly files: LaunchFiles
  readonly #deps: PtyHostDeps
  readonly #log: Logger
  readonly #shell: string
  readonly #setpriv: string | null
  readonly #spawn: SpawnFn
  readonly #systemdRun: string | null
  readonly #sessions = new Map<string, LaunchSession>()
  readonly #stops: CommandStops
  #unfollow: (() => void) | null = null
  #poll: NodeJS.Timeout | null = null
  #prune: NodeJS.Timeout | null = null
  #closed = false

  constructor (deps: PtyHostDeps) {
    this.#deps = deps
    this.#log = deps.logger.child({ room: 'pty' })
    this.#shell = deps.shell ?? '/bin/sh'
    this.#setpriv = deps.setpriv !== undefined ? deps.setpriv : findSetpriv()
    this.#spawn = deps.spawn ?? defaultSpawn
    this.#systemdRun = deps.systemdRun !== undefined ? deps.systemdRun : detectSystemdRun()
    this.#stops = new CommandStops({ runs: deps.runs, probes: deps.probes, systemdRun: this.#systemdRun, killGraceSeconds: deps.config.launch.killGraceSeconds, log: this.#log })
    this.files = new LaunchFiles(deps.config.stateDir, deps.daemonUid)
    // A run can be ended as killed on another node (cluster mode: a revoke there, or its owner's end once the head's
    // host counted dead): the command this host runs for it must stop then too, or it goes on after its secrets are
    // gone. The owner revokes meanwhile. Only `killed`: a run ended as completed or failed (its log's Goodbye, its
    // history line) is a command finishing by itself, which is left to finish, as on one node. On one node a revoke
    // stops the command itself first (RunManager.revoke), so this finds it stopping already. When this node is also
    // the run's owner, its revoke waits for this stop (Revoker's beforeRevoke -> stop() joins it): command first.
    this.#unfollow = deps.runs.onEnded(run => { if (run.state === 'killed' && run.mode === 'launch') void this.#endedElsewhere(run.runId) })
  }

  async #endedElsewhere (runId: string): Promise<void> {
    const s = this.#sessions.get(runId)
    if (this.#closed || s === undefined || s.ended !== null || s.stopping || s.isGone) return
    this.#log.info({ runId, pid: s.pid }, 'the run was ended as killed elsewhere; stopping its command')
    await this.stop(runId).catch((err: unknown) => { this.#log.error({ runId, err }, 'stopping the command of a run ended elsewhere failed') })
  }

  /** setpriv when the daemon is root and the caller is not; never run a user's command as root. */
  #dropFor (caller: Caller): string | null {
    if (this.#deps.daemonUid !== 0 || caller.uid === 0) return null
    if (this.#setpriv === null) throw nfsError('NFS_ERR_LAUNCH_FAILED', ['setpriv (util-linux) is not installed, so the command cannot run as you'])
    return this.#setpriv
  }

  /** Check, provision, start. On a failed start the run ends `failed` and is revoked. */
  async launch (caller: Caller, req: CreateRunRequest): Promise<CreatedRun> {
    if (this.#closed) throw nfsError('NFS_ERR_LAUNCH_FAILED', ['the daemon is stopping'])
    const command = req.command ?? []
    if (command.length === 0) throw nfsError('NFS_ERR_BAD_REQUEST', ['mode launch needs a command'])
    const setpriv = this.#dropFor(caller)
    await precheck({ shell: this.#shell, setpriv, identity: caller, launchDir: req.launchDir, command: command[0]!, path: req.env?.PATH })
    const created = await this.#deps.runs.create(caller, req)
    try {
      await this.#start(caller, req, created, setpriv)
    } catch (err) {
      this.#log.error({ runId: created.runId, err }, 'the command could not be started; ending the run')
      await this.#deps.runs.end(created.runId, 'failed', 'the command could not be started').catch((e: unknown) => {
        this.#log.error({ runId: created.runId, err: e }, 'ending the run after a failed start failed')
      })
      throw nfsError('NFS_ERR_LAUNCH_FAILED', [isCoded(err) ? err.message : 'the terminal could not be opened'], err)
    }
    return created
  }

  async #start (caller: Caller, req: CreateRunRequest, created: CreatedRun, setpriv: string | null): Promise<void> {
    const { term, paths, log } = await spawnCommand({ shell: this.#shell, setpriv, systemdRun: this.#systemdRun, spawn: this.#spawn, files: this.files, log: this.#log }, caller, req, created)
    const session = new LaunchSession({
      runId: created.runId,
      user: caller.user,
      uid: caller.uid,
      pid: term.pid,
      paths,
      replayBytes: this.#deps.config.launch.replayBytes,
      logger: this.#log,
      pty: term,
      log
    })
    this.#sessions.set(created.runId, session)
    // With encoding null node-pty hands over Buffers; its typings say string.
    term.onData((data) => session.output(Buffer.isBuffer(data) ? data : Buffer.from(data)))
    const started = this.#deps.runs.markStarted(created.runId, { pid: term.pid })
    term.onExit(({ exitCode, signal }) => {
      void started.catch(() => null).then(() => this.#exited(session, exitFromPty(exitCode, signal)))
        .catch((err: unknown) => this.#log.error({ runId: created.runId, err }, 'recording the command\'s end failed; the monitor ends the run'))
    })
    await started
    this.#log.info({ runId: created.runId, pid: term.pid, user: caller.user }, 'command started')
  }

  /** The command is over: record its status, end the run (a `-bg` Nextflow keeps it), tell the clients. */
  async #exited (session: LaunchSession, fromPty: ExitStatus | null): Promise<void> {
    if (this.#closed || session.ended !== null) return
    session.processGone()
    const { runs } = this.#deps
    const text = await this.files.readStatus(session.paths)
    const recorded = text !== null ? parseStatusFile(text) : null
    const exit = recorded !== null ? exitFromStatus(recorded) : fromPty
    await this.files.remove(session.paths.status)
    let state = 'killed'
    try {
      const run = runs.run(session.runId)
      if (run === undefined) throw nfsError('NFS_ERR_RUN_NOT_FOUND', [session.runId])
      if (isTerminal(run.state) || exit === null) {
        // Ended before its command went (a revoke, its owner's end on another node), or gone without a status: say on
        // the ledger that the command is gone, which an owner on another node waits for before it revokes.
        if (!isTerminal(run.state)) state = (await runs.end(session.runId, 'killed', 'the command is gone and left no exit status')).state
        else state = run.state
        await runs.commandGone(session.runId, { exitCode: exit?.exitCode ?? null, signal: exit?.signal ?? null })
      } else {
        const end = { exitCode: exit.exitCode, ...(exit.signal !== null ? { signal: exit.signal } : {}) }
        state = (await runs.finish(ownerOf(run), session.runId, end)).state
      }
    } catch (err) {
      this.#log.error({ runId: session.runId, err }, 'ending a launched run failed; the monitor retries')
      state = runs.run(session.runId)?.state ?? state
    }
    this.#log.info({ runId: session.runId, state, exitCode: exit?.exitCode ?? null, signal: exit?.signal ?? null }, 'command exited')
    await session.finish({ type: 'exit', state, exitCode: exit?.exitCode ?? null, signal: exit?.signal ?? null })
    setTimeout(() => { if (this.#sessions.get(session.runId) === session) this.#sessions.delete(session.runId) }, KEEP_ENDED_MS).unref()
  }

  /** RunHost: a session whose end is not recorded yet (a daemon that is closing holds none). */
  holds (runId: string): boolean {
    const s = this.#sessions.get(runId)
    return !this.#closed && s !== undefined && s.ended === null
  }

  /**
   * RunHost: stop a launched command before its run is revoked. SIGTERM, then SIGKILL after the grace period; one stop
   * per command at a time (command-stop.ts), so that the revoke comes after the command is gone.
   */
  async stop (runId: string): Promise<void> {
    const s = this.#sessions.get(runId)
    if (s === undefined || s.ended !== null || s.isGone) return
    await this.#stops.stop(s)
  }

  /**
   * After a restart: every live launched run of this host that the ledger knows becomes a session without a
   * terminal; those that ended while the daemon was down are ended now with their recorded status. Call before
   * the monitor's reconcile, so the real status wins over "process gone".
   */
  async adopt (): Promise<number> {
    let n = 0
    // Every live run whose command runs on this host (RunQueries.hostedHere), also one another node adopted while this
    // daemon was down: that node revokes it, but only this host can see its command go (and record its end, which the
    // owner then revokes) or stop it when the run ends on another node (#endedElsewhere). Such a run is this daemon's
    // only if it launched it (its output log is in this state dir): two daemons on one host share a host name.
    const owned = new Set(this.#deps.runs.localHeads().map(r => r.runId))
    for (const run of this.#deps.runs.hostedHere()) {
      if (run.mode !== 'launch' || run.pid === null || this.#sessions.has(run.runId)) continue
      if (!owned.has(run.runId) && !(await this.files.hasLog(run, run.runId))) continue
      const paths = this.files.paths(run, run.runId)
      const session = new LaunchSession({
        runId: run.runId, user: run.user, uid: run.uid, pid: run.pid, paths, replayBytes: this.#deps.config.launch.replayBytes, logger: this.#log, pty: null, log: null
      })
      session.output(await this.files.logTail(run, run.runId, this.#deps.config.launch.replayBytes))
      this.#sessions.set(run.runId, session)
      n++
      if (!(await this.#deps.probes.processAlive(run.pid, run.pidStart))) await this.#exited(session, null)
    }
    if (n > 0) this.#log.info({ adopted: n }, 'adopted launched runs from before the restart')
    this.#poll ??= setInterval(() => {
      this.#checkAdopted().catch((err: unknown) => this.#log.error({ err }, 'checking adopted runs failed'))
    }, this.#deps.pollMs ?? 1000)
    this.#poll.unref()
    await this.prune()
    this.#prune ??= setInterval(() => { void this.prune() }, PRUNE_EVERY_MS)
    this.#prune.unref()
    return n
  }

  async #checkAdopted (): Promise<void> {
    for (const s of this.#sessions.values()) {
      if (s.live || s.ended !== null || this.#closed) continue
      const run = this.#deps.runs.run(s.runId)
      if (run !== undefined && (await this.#deps.probes.processAlive(s.pid, run.pidStart))) continue
      await this.#exited(s, null).catch((err: unknown) => this.#log.error({ runId: s.runId, err }, 'ending an adopted run failed'))
    }
  }

  /** Remove output logs past `launch.outputRetentionDays` and leftovers of ended runs. */
  async prune (): Promise<number> {
    const keep = (runId: string): boolean => {
      const s = this.#sessions.get(runId)
      const run = this.#deps.runs.run(runId)
      return (s !== undefined && s.ended === null) || (run !== undefined && !isTerminal(run.state))
    }
    try {
      return await this.files.prune(this.#deps.config.launch.outputRetentionDays, this.#deps.clock(), keep)
    } catch (err) {
      this.#log.warn({ err }, 'pruning launch files failed')
      return 0
    }
  }

  /** Can this caller attach to this run? Only its owner, and only a launched run this daemon hosts or hosted. */
  checkAttach (caller: Caller, runId: string): RunRecord {
    const run = this.#deps.runs.run(runId)
    // Not even an admin: attaching means typing into the user's terminal, as that user.
    if (run === undefined || run.uid !== caller.uid || run.user !== caller.user) throw nfsError('NFS_ERR_RUN_NOT_FOUND', [JSON.stringify(runId.slice(0, 40))])
    if (run.mode !== 'launch') throw nfsError('NFS_ERR_RUN_STATE', [runId, 'not a launched run'])
    if (!this.#sessions.has(runId) && !isTerminal(run.state)) throw nfsError('NFS_ERR_RUN_STATE', [runId, `not hosted by this daemon (${run.host})`])
    return run
  }

  /** Attach a client: replay, then live output and the end. The caller gets the input side and a way out. */
  async attach (caller: Caller, runId: string, client: AttachClient): Promise<Attachment> {
    const run = this.checkAttach(caller, runId)
    const s = this.#sessions.get(runId)
    if (s === undefined) {
      // Long over: what the log kept, then its end.
      const tail = await this.files.logTail(run, runId, this.#deps.config.launch.replayBytes)
      if (tail.length > 0) client.output(tail)
      client.exit({ type: 'exit', state: run.state, exitCode: run.exitCode, signal: run.signal })
      return { input () {}, resize () {}, detach () {} }
    }
    const detach = s.attach(client)
    return { input: (d) => s.input(d), resize: (c, r) => s.resize(c, r), detach }
  }

  /** Sessions in this process, for tests and status. */
  session (runId: string): LaunchSession | undefined {
    return this.#sessions.get(runId)
  }

  /** Daemon shutdown: let go of every terminal without signalling a command; the next daemon adopts them. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#unfollow?.()
    if (this.#poll !== null) clearInterval(this.#poll)
    if (this.#prune !== null) clearInterval(this.#prune)
    for (const s of this.#sessions.values()) await s.detachTerminal()
    this.#sessions.clear()
  }
}
