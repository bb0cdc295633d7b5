// A REAL nf-secretsd for end-to-end tests: the compiled daemon (dist/, what `npm install -g` ships) in a child
// process, on a socket in a temp dir, its JSON log captured to a file for leak scans, stopped with SIGTERM in
// teardown. runCli() runs the compiled nf-secrets as any Unix user through runuser, with a clean environment.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const DAEMON_BIN = join(ROOT, 'dist', 'daemon', 'main.js')
export const CLI_BIN = join(ROOT, 'dist', 'daemon', 'cli', 'main.js')

interface Teardown { teardown: (fn: () => unknown) => void }

function newestSource (dir: string): number {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(p))
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs)
  }
  return newest
}

function sleepMs (ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/**
 * `npm test` builds first; a single test file run by hand (`npx tap test/e2e/x.test.ts`) rebuilds dist/ here when a
 * source is newer than the bins. Test files run in parallel, so one builds under a lock dir and the others wait.
 */
export function ensureBuilt (): void {
  const built = (): number => existsSync(CLI_BIN) && existsSync(DAEMON_BIN) ? Math.min(statSync(CLI_BIN).mtimeMs, statSync(DAEMON_BIN).mtimeMs) : 0
  const sources = Math.max(...['daemon', 'adapters', 'policies'].filter(d => existsSync(join(ROOT, d))).map(d => newestSource(join(ROOT, d))))
  if (built() >= sources) return
  const lock = join(ROOT, 'dist', '.e2e-build.lock')
  mkdirSync(dirname(lock), { recursive: true })
  for (let i = 0; i < 1200; i++) {
    try {
      mkdirSync(lock)
    } catch {
      sleepMs(250)
      if (built() >= sources) return
      continue
    }
    try {
      if (built() >= sources) return
      // tsc emits even when some file has a type error (another engineer's half-done edit); the bins are what count.
      const r = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8' })
      if (!existsSync(CLI_BIN) || !existsSync(DAEMON_BIN)) throw new Error(`build failed:\n${r.stdout}${r.stderr}`)
      chmodSync(CLI_BIN, 0o755)
      chmodSync(DAEMON_BIN, 0o755)
      return
    } finally {
      rmSync(lock, { recursive: true, force: true })
    }
  }
  throw new Error('timed out waiting for another test to build dist/')
}

/** A temp dir that other local users can traverse (0755), for system-mode sockets; removed in teardown. */
export function tempDir (t: Teardown, prefix = 'nfs-e2e-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  chmodSync(dir, 0o755)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

export interface DaemonOptions {
  mode: 'user' | 'system'
  /** the temp dir holding everything; a fresh one when absent */
  dir?: string
  /** merged into the config file written to <dir>/config.json (stateDir, socket and hpc.runsRoot are set already) */
  config?: Record<string, unknown>
  /** extra daemon flags */
  args?: string[]
  env?: NodeJS.ProcessEnv
  /** wait this long for /api/v1/health (a loaded CI machine can take several seconds to start node) */
  readyTimeoutMs?: number
}

export interface TestDaemon {
  dir: string
  socket: string
  stateDir: string
  configFile: string
  logFile: string
  process: ChildProcess
  /** everything the daemon wrote to stdout and stderr so far */
  log: () => string
  /** SIGTERM and wait; resolves with the exit code (idempotent) */
  stop: () => Promise<number | null>
}

export interface DaemonPaths { dir: string, socket: string, stateDir: string, configFile: string, logFile: string }

/** The layout of one test daemon under `dir`, and its config file written. */
export function daemonPaths (dir: string, config: Record<string, unknown> = {}): DaemonPaths {
  const paths = {
    dir,
    socket: join(dir, 'sock', 'api.sock'),
    stateDir: join(dir, 'state'),
    configFile: join(dir, 'config.json'),
    logFile: join(dir, 'daemon.log')
  }
  const full = { hpc: { runsRoot: join(dir, 'runs') }, logLevel: 'debug', ...config }
  writeFileSync(paths.configFile, `${JSON.stringify(full, null, 2)}\n`, { mode: 0o600 })
  return paths
}

export function daemonArgs (mode: 'user' | 'system', p: DaemonPaths, extra: string[] = []): string[] {
  return [DAEMON_BIN, '--mode', mode, '--state-dir', p.stateDir, '--socket', p.socket, '--config', p.configFile, ...extra]
}

/** GET a path over a Unix socket as this process (root); resolves with status and body text. */
export function socketGet (socket: string, path: string, timeoutMs = 5000): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

function exited (child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise(resolve => child.once('exit', (code) => resolve(code)))
}

/** Start a daemon and wait until it answers /api/v1/health; stopped (SIGTERM) in teardown. */
export async function startTestDaemon (t: Teardown, opts: DaemonOptions): Promise<TestDaemon> {
  ensureBuilt()
  const dir = opts.dir ?? tempDir(t)
  const p = daemonPaths(dir, opts.config)
  const out = openSync(p.logFile, 'a', 0o600)
  // --pdeathsig: a test process killed by tap's timeout takes its daemon with it instead of leaving an orphan.
  const child = spawn('setpriv', ['--pdeathsig', 'SIGTERM', '--', ...NO_TAP_HOOKS, process.execPath, ...daemonArgs(opts.mode, p, opts.args)], {
    cwd: dir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8', ...opts.env },
    stdio: ['ignore', out, out]
  })
  closeSync(out)
  const log = (): string => existsSync(p.logFile) ? readFileSync(p.logFile, 'utf8') : ''
  let stopping: Promise<number | null> | null = null
  const stop = (): Promise<number | null> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      const code = await exited(child)
      clearTimeout(timer)
      return code
    })()
    return stopping
  }
  t.teardown(stop)
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000)
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`nf-secretsd exited with ${child.exitCode ?? child.signalCode} before it was ready:\n${log()}`)
    }
    const health = await socketGet(p.socket, '/api/v1/health', 2000).catch(() => null)
    if (health?.status === 200) break
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`nf-secretsd did not answer /api/v1/health within the timeout:\n${log()}`)
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  return { ...p, process: child, log, stop }
}

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

/**
 * tap's process-info hook adds itself to NODE_OPTIONS of every child it sees spawned. The bins under test must run as
 * they do in production: without it (it also makes each start slower, and as another user it fails writing to .tap/).
 */
export const NO_TAP_HOOKS = ['env', '-u', 'NODE_OPTIONS']

/** The argv that runs `node <script> ...args` as `user` (or as ourselves). */
export function asUser (user: string | undefined, script: string, args: string[]): [string, string[]] {
  if (user === undefined) return [NO_TAP_HOOKS[0]!, [...NO_TAP_HOOKS.slice(1), process.execPath, script, ...args]]
  return ['runuser', ['-u', user, '--', ...NO_TAP_HOOKS, process.execPath, script, ...args]]
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

/** Remove a file if present (a stale socket left by a test). */
export function removeIfPresent (path: string): void {
  try { unlinkSync(path) } catch {}
}
