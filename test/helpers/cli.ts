// The compiled bins run to their end or streamed, for end-to-end tests: nf-secrets (the CLI) and nf-secretsd's
// one-shot commands, as any Unix user through runuser, with a clean environment and without tap's hooks. The daemon
// itself, as a server, is started by daemon.ts.
import { spawn, type ChildProcess } from 'node:child_process'
import { tmpdir } from 'node:os'
import { CLI_BIN, DAEMON_BIN, NO_TAP_HOOKS, ensureBuilt } from './daemon.js'
import { forOthers } from './for-others.js'

interface Teardown { teardown: (fn: () => unknown) => void }

export interface RunResult { code: number | null, signal: NodeJS.Signals | null, stdout: string, stderr: string }

export interface RunOptions {
  /** run as this Unix user (through runuser); as the test's own user (root) when absent */
  user?: string
  /** written to stdin, then stdin is closed; stdin is an empty pipe when absent */
  input?: string | Buffer
  /** added to a clean environment (PATH, LANG, HOME) */
  env?: NodeJS.ProcessEnv
  cwd?: string
  timeoutMs?: number
}

/** The argv that runs `node <script> ...args` as `user` (from a copy that user can read, if need be) or as ourselves. */
export function asUser (user: string | undefined, script: string, args: string[]): [string, string[]] {
  if (user === undefined) return [NO_TAP_HOOKS[0]!, [...NO_TAP_HOOKS.slice(1), process.execPath, script, ...args]]
  return ['runuser', ['-u', user, '--', ...NO_TAP_HOOKS, process.execPath, forOthers(script), ...args]]
}

/** Run a node script to its end and collect its output (killed after timeoutMs). */
export function runNode (script: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const [cmd, argv] = asUser(opts.user, script, args)
  // runuser sets HOME, USER and LOGNAME of the target user; the rest of a root shell's environment stays out.
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, LANG: 'C.UTF-8', ...(opts.user === undefined ? { HOME: process.env.HOME } : {}), ...opts.env }
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { env, cwd: opts.cwd ?? tmpdir(), stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (c: Buffer) => out.push(c))
    child.stderr.on('data', (c: Buffer) => err.push(c))
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') })
    })
    child.stdin.on('error', () => {})
    child.stdin.end(opts.input ?? '')
  })
}

/** Run the compiled nf-secrets CLI. */
export function runCli (args: string[], opts: RunOptions = {}): Promise<RunResult> {
  ensureBuilt()
  return runNode(CLI_BIN, args, opts)
}

export interface StreamingCli {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  /** resolves when the stream's text so far matches (rejects after timeoutMs, or if the process ends first) */
  waitFor: (which: 'stdout' | 'stderr', pattern: RegExp, timeoutMs?: number) => Promise<void>
  /** SIGTERM (or the given signal) and the result; killed in teardown otherwise */
  stop: (signal?: NodeJS.Signals) => Promise<RunResult>
}

/** Start the CLI for a long-running command (events, attach) and watch its output as it comes. */
export function spawnCli (t: Teardown, args: string[], opts: RunOptions = {}): StreamingCli {
  ensureBuilt()
  const [cmd, argv] = asUser(opts.user, CLI_BIN, args)
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, LANG: 'C.UTF-8', ...(opts.user === undefined ? { HOME: process.env.HOME } : {}), ...opts.env }
  const child = spawn(cmd, argv, { env, cwd: opts.cwd ?? tmpdir(), stdio: ['pipe', 'pipe', 'pipe'] })
  const text = { stdout: '', stderr: '' }
  child.stdout!.on('data', (c: Buffer) => { text.stdout += c.toString('utf8') })
  child.stderr!.on('data', (c: Buffer) => { text.stderr += c.toString('utf8') })
  const closed = new Promise<RunResult>(resolve => child.on('close', (code, signal) => resolve({ code, signal, ...text })))
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return {
    child,
    stdout: () => text.stdout,
    stderr: () => text.stderr,
    async waitFor (which, pattern, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs
      while (!pattern.test(text[which])) {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nf-secrets ended before ${which} matched ${pattern}: ${text.stderr}`)
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${which} to match ${pattern}; stderr: ${text.stderr}`)
        await new Promise(resolve => setTimeout(resolve, 50))
      }
    },
    async stop (signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return await closed
    }
  }
}

/** Run the compiled nf-secretsd to its exit (check-config, rotate-key, a start that must fail). */
export function runDaemon (args: string[], opts: RunOptions = {}): Promise<RunResult> {
  ensureBuilt()
  return runNode(DAEMON_BIN, args, opts)
}

/** The coded error at the end of a CLI or daemon stderr line: `... (NFS_ERR_X)`. */
export function errorCode (stderr: string): string | null {
  const m = /\((NFS_ERR_[A-Z_]+)\)\s*$/.exec(stderr.trim())
  return m?.[1] ?? null
}

/** A JSON parse that says what it failed on (test output is easier to read than a bare SyntaxError). */
export function json<T = unknown> (text: string): T {
  try {
    return JSON.parse(text) as T
  } catch {
    throw new Error(`not JSON: ${text.slice(0, 500)}`)
  }
}
