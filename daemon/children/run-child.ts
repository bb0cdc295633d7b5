// runChild: the one way the daemon starts a short-lived child process (cleanup `find`, precheck, Slurm probes, and
// any file work done as a user). Children are untrusted: a user can stop, slow or flood a child that runs as them,
// so every child
//  - has a deadline: at it, its whole process group gets SIGKILL and the promise settles with `timedOut`, even when
//    the child cannot die at once (a process in uninterruptible sleep on a hung NFS mount is reaped later);
//  - runs in a session and process group of its own (setsid), so the group kill reaches what it started too, and
//    no signal meant for the daemon's group reaches it;
//  - starts with exactly fds 0, 1 and 2: the daemon marks every fd of its own close-on-exec before each spawn;
//  - gets no shell and a fixed environment (nothing of the daemon's, unless the caller passes it);
//  - has its stdout and stderr read up to a bound (the rest is drained and dropped, so a chatty child never blocks
//    on a full pipe and never grows the daemon's memory);
//  - has its 'error' event handled before anything else touches it: a spawn that fails (ENOENT, EMFILE, EAGAIN)
//    rejects the promise with Node's error (its `code` kept) instead of crashing the daemon.
// The promise rejects only when the child could not be started; every ended child resolves, whatever its status.
import { spawn, type ChildProcess } from 'node:child_process'
import type { Readable, Writable } from 'node:stream'
import { native } from '../os/native.js'

/** The environment a child gets when the caller passes none. */
export const CHILD_ENV: Readonly<Record<string, string>> = Object.freeze({ PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' })
/** Per stream, when the caller sets no bound. */
export const DEFAULT_MAX_OUTPUT = 1024 * 1024

export interface RunChildOptions {
  /** run as this uid and gid (both or neither; libuv drops supplementary groups when it sets them) */
  uid?: number
  gid?: number
  /** default `/` */
  cwd?: string
  /** the whole environment; default CHILD_ENV */
  env?: Readonly<Record<string, string>>
  /** after this many ms the child's process group is killed and the result has `timedOut` */
  deadlineMs: number
  /** written to the child's stdin, which is then closed; without it stdin is /dev/null */
  input?: string | Buffer
  /** bytes kept of stdout and of stderr each; default DEFAULT_MAX_OUTPUT */
  maxOutputBytes?: number
}

export interface ChildResult {
  /** the exit status, or null when the child ended by a signal (or is still being killed at the deadline) */
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** killed at its deadline */
  timedOut: boolean
  /** stdout or stderr was longer than maxOutputBytes and was cut */
  truncated: boolean
}

/** Bounded capture of one stream: keeps the first `max` bytes, drains the rest. */
class Capture {
  readonly #chunks: Buffer[] = []
  #size = 0
  truncated = false

  constructor (stream: Readable | null | undefined, readonly max: number) {
    if (stream == null) return // on EMFILE Node leaves the stdio streams undefined
    stream.on('error', () => {}) // a read error only shortens the capture; the child's end settles the run
    stream.on('data', (d: Buffer) => {
      const room = this.max - this.#size
      if (room <= 0) { this.truncated = true; return }
      const part = d.length > room ? d.subarray(0, room) : d
      if (part.length < d.length) this.truncated = true
      this.#chunks.push(part)
      this.#size += part.length
    })
  }

  text (): string {
    return Buffer.concat(this.#chunks).toString('utf8')
  }
}

function killGroup (child: ChildProcess): void {
  if (child.pid === undefined) return
  try {
    process.kill(-child.pid, 'SIGKILL')
  } catch {
    // ESRCH: the group is gone already. Fall back to the child itself in case it left its group.
    try { child.kill('SIGKILL') } catch {}
  }
}

function writeInput (stdin: Writable | null | undefined, input: string | Buffer | undefined): void {
  if (stdin == null || input === undefined) return
  // EPIPE when the child exits without reading: not an error of the run.
  stdin.on('error', () => {})
  stdin.end(input)
}

/**
 * Run `file` with `args` (no shell) and settle with how it ended. Rejects only when it could not be started
 * (the Node error, with its errno `code`).
 */
export function runChild (file: string, args: readonly string[], opts: RunChildOptions): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    // Whatever opened an fd without O_CLOEXEC (node-pty's master, an inherited fd), the child must not get it.
    native().cloexecFrom(3)
    let child: ChildProcess
    try {
      child = spawn(file, [...args], {
        cwd: opts.cwd ?? '/',
        env: { ...(opts.env ?? CHILD_ENV) },
        stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
        detached: true,
        windowsHide: true,
        ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
        ...(opts.gid !== undefined ? { gid: opts.gid } : {})
      })
    } catch (err) {
      reject(err)
      return
    }
    let settled = false
    let timedOut = false
    // Declared before it is set: settle() may run (and clear it) before the deadline is armed.
    // eslint-disable-next-line prefer-const
    let timer: NodeJS.Timeout | undefined
    const settle = (fn: () => void): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      fn()
    }
    // First, before any stdio is touched: on EMFILE/ENFILE Node sets up no stdio streams at all.
    child.once('error', (err) => {
      if (child.pid === undefined) return settle(() => reject(err))
      // A started child's later error (a failed kill) changes nothing: its exit still settles the run.
    })
    const max = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT
    const out = new Capture(child.stdout, max)
    const errOut = new Capture(child.stderr, max)
    writeInput(child.stdin, opts.input)
    const result = (code: number | null, signal: NodeJS.Signals | null): ChildResult =>
      ({ code, signal, stdout: out.text(), stderr: errOut.text(), timedOut, truncated: out.truncated || errOut.truncated })
    if (settled) return
    timer = setTimeout(() => {
      timedOut = true
      killGroup(child)
      // Settle now: a child in uninterruptible sleep dies only when its I/O returns, and nothing may wait for it.
      // Its streams are let go, and libuv still reaps it when it goes.
      child.stdout?.destroy()
      child.stderr?.destroy()
      child.stdin?.destroy()
      settle(() => resolve(result(null, 'SIGKILL')))
    }, opts.deadlineMs)
    // 'close' waits for the pipes too; a grandchild that keeps them open is stopped by the deadline above.
    child.once('close', (code, signal) => settle(() => resolve(result(code, signal))))
  })
}
