// One launched run as this daemon sees it: its terminal (or none, for a run adopted after a restart), the recent
// output for replay, the output log, the attached clients, and its end.
import type { FileHandle } from 'node:fs/promises'
import type { IPty } from './node-pty.js'
import type { Logger } from '../logger.js'
import { RingBuffer } from './ring-buffer.js'
import type { LaunchPaths } from './launch-files.js'

// A runaway command must not fill the state dir: the log stops growing here (the ring and clients still get it).
export const LOG_CAP_BYTES = 256 * 1024 * 1024

export interface ExitMessage {
  type: 'exit'
  state: string
  exitCode: number | null
  signal: string | null
}

/** What the attach endpoint hands a session: where output and the end go. */
export interface AttachClient {
  output (data: Buffer): void
  exit (msg: ExitMessage): void
}

export interface SessionInit {
  runId: string
  user: string
  uid: number
  pid: number
  paths: LaunchPaths
  replayBytes: number
  logger: Logger
  pty: IPty | null
  log: FileHandle | null
}

export class LaunchSession {
  readonly runId: string
  readonly user: string
  readonly uid: number
  readonly pid: number
  readonly paths: LaunchPaths
  readonly ring: RingBuffer
  #pty: IPty | null
  #log: FileHandle | null
  #logged = 0
  #logChain: Promise<unknown> = Promise.resolve()
  readonly #clients = new Set<AttachClient>()
  readonly #logger: Logger
  #end: ExitMessage | null = null
  #stopping = false
  #goneSeen = false
  readonly #gone: Promise<void>
  #markGone: () => void = () => {}

  constructor (init: SessionInit) {
    this.runId = init.runId
    this.user = init.user
    this.uid = init.uid
    this.pid = init.pid
    this.paths = init.paths
    this.ring = new RingBuffer(init.replayBytes)
    this.#pty = init.pty
    this.#log = init.log
    this.#logger = init.logger
    this.#gone = new Promise(resolve => { this.#markGone = resolve })
  }

  /** Has a terminal (false for a run adopted after a restart: its terminal went with the old daemon). */
  get live (): boolean {
    return this.#pty !== null
  }

  get ended (): ExitMessage | null {
    return this.#end
  }

  get stopping (): boolean {
    return this.#stopping
  }

  set stopping (v: boolean) {
    this.#stopping = v
  }

  /** Resolves once the process is gone. */
  get gone (): Promise<void> {
    return this.#gone
  }

  processGone (): void {
    this.#goneSeen = true
    this.#markGone()
  }

  /** The process is known to be gone (its end is being recorded or was). */
  get isGone (): boolean {
    return this.#goneSeen
  }

  output (data: Buffer): void {
    this.ring.push(data)
    this.#writeLog(data)
    for (const c of this.#clients) c.output(data)
  }

  #writeLog (data: Buffer): void {
    const log = this.#log
    if (log === null || this.#logged >= LOG_CAP_BYTES) return
    const chunk = data.subarray(0, LOG_CAP_BYTES - this.#logged)
    this.#logged += chunk.length
    this.#logChain = this.#logChain.then(() => log.write(chunk)).catch((err: unknown) => {
      this.#logger.warn({ runId: this.runId, err }, 'writing the output log failed; the log stops here')
      this.#log = null
    })
  }

  input (data: string): void {
    if (this.#end === null) this.#pty?.write(data)
  }

  resize (cols: number, rows: number): void {
    if (this.#end !== null || this.#pty === null) return
    try {
      this.#pty.resize(cols, rows)
    } catch (err) {
      this.#logger.debug({ runId: this.runId, err }, 'resize refused')
    }
  }

  /** Replay what is held, then stream; an ended run replays and ends at once. Returns the detach function. */
  attach (client: AttachClient): () => void {
    const replay = this.ring.contents()
    if (replay.length > 0) client.output(replay)
    if (this.#end !== null) {
      client.exit(this.#end)
      return () => {}
    }
    this.#clients.add(client)
    return () => { this.#clients.delete(client) }
  }

  /** The run is over: every client gets the end and is let go; the terminal and the log are closed. */
  async finish (msg: ExitMessage): Promise<void> {
    if (this.#end !== null) return
    this.#end = msg
    for (const c of this.#clients) c.exit(msg)
    this.#clients.clear()
    await this.detachTerminal()
  }

  /**
   * Close the terminal and the log without touching the process (daemon shutdown): the command ignores the
   * hangup and goes on; the next daemon adopts it.
   */
  async detachTerminal (): Promise<void> {
    const pty = this.#pty
    this.#pty = null
    if (pty !== null) {
      try {
        // destroy() closes the master and then sends SIGHUP to the wrapper, which ignores it.
        (pty as IPty & { destroy: () => void }).destroy()
      } catch {
        // already closed
      }
    }
    await this.#logChain
    const log = this.#log
    this.#log = null
    await log?.close().catch(() => {})
  }
}
