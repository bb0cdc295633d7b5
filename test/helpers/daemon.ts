// A REAL nf-secretsd for tests, the one way they start one: the compiled daemon (dist/, what `npm install -g` ships)
// in a child process, on a socket in a temp dir (or on a socket handed over as systemd does), its JSON log captured to
// a file for leak scans and parsed for assertions on fields, stopped with SIGTERM (or the signal a test sends).
// call() talks to it over its socket. Running the CLI and the daemon's one-shot commands: cli.ts.
import { spawn, spawnSync, type ChildProcess, type StdioOptions } from 'node:child_process'
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { request, type Agent } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { forOthers } from './for-others.js'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const DAEMON_BIN = join(ROOT, 'dist', 'daemon', 'main.js')
/** The CLI as the package ships it: package.json's `nf-secrets` bin (the bundle of scripts/bundle-cli.mjs). */
export const CLI_BIN = join(ROOT, (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin['nf-secrets']!)

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
      // The CLI's bin is a bundle of tsc's output (`npm run build`'s second step): made again from what tsc emitted.
      const b = spawnSync(process.execPath, [join(ROOT, 'scripts', 'bundle-cli.mjs')], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } })
      if (!existsSync(CLI_BIN) || !existsSync(DAEMON_BIN) || b.status !== 0) throw new Error(`build failed:\n${r.stdout}${r.stderr}${b.stdout}${b.stderr}`)
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
  /** a listening socket's fd handed over as fd 3 with LISTEN_FDS=1 and LISTEN_PID set to the daemon's pid */
  listenFd?: number
  /** where /api/v1/health is asked until it answers (default: the configured socket) */
  healthSocket?: string
  /** runs right after the spawn, before the health wait (e.g. the test closes its copy of a handed-over socket) */
  afterSpawn?: () => unknown
  /** false: no build check (a suite that built once, and restarts that must not wait for a rebuild) */
  build?: boolean
  /** false: resolve once spawned, without waiting for /health (to kill it while it starts) */
  wait?: boolean
  /**
   * the daemon's umask; system-mode daemons default to 0o077, as the shipped unit's UMask= sets it, so a mode
   * left to the umask shows up in tests as it would on a site (user mode keeps the test process's own)
   */
  umask?: number
  /** capabilities taken out of the bounding (and inheritable) set, as setpriv names them: `['dac_override', 'chown']` */
  dropCaps?: string[]
  /**
   * a command that execs the rest of the argv, put in front of it (e.g. `unshare --uts` and a shell that sets the
   * host name, for a node on a host of its own); it must exec, not fork, so the child's pid stays the daemon's
   */
  wrap?: string[]
}

export type LogLine = Record<string, unknown> & { level: number, msg?: string }

export interface TestDaemon {
  dir: string
  socket: string
  stateDir: string
  configFile: string
  logFile: string
  process: ChildProcess
  /** everything the daemon wrote to stdout and stderr so far (the log file is shared by daemons started in one dir) */
  log: () => string
  /** the JSON lines this process logged so far; a line that is not JSON is `{ level: -1, raw }` */
  logs: () => LogLine[]
  /** resolves with the first line of this process that matches (`i`: its index in logs()) */
  waitForLog: (pred: (l: LogLine, i: number) => boolean, timeoutMs?: number) => Promise<LogLine>
  /** send SIGTERM (or `signal`) and wait; resolves with the exit code (idempotent: later calls give the same) */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>
}

export interface DaemonPaths { dir: string, socket: string, stateDir: string, configFile: string, logFile: string }

/** The layout of one test daemon under `dir`, and its config file written. */
export function daemonPaths (dir: string, config: Record<string, unknown> = {}): DaemonPaths {
  writeConfig(dir, config)
  return { dir, socket: join(dir, 'sock', 'api.sock'), stateDir: join(dir, 'state'), configFile: join(dir, 'config.json'), logFile: join(dir, 'daemon.log') }
}

/** (Re)write `<dir>/config.json`: hpc.runsRoot is `<dir>/runs` and logs are at debug unless `config` says otherwise. */
export function writeConfig (dir: string, config: Record<string, unknown> = {}): void {
  const full = { hpc: { runsRoot: join(dir, 'runs') }, logLevel: 'debug', ...config }
  writeFileSync(join(dir, 'config.json'), `${JSON.stringify(full, null, 2)}\n`, { mode: 0o600 })
}

export function daemonArgs (mode: 'user' | 'system', p: DaemonPaths, extra: string[] = []): string[] {
  // A system-mode daemon runs children as the users: from a copy they can read when the checkout is closed to them.
  return [mode === 'system' ? forOthers(DAEMON_BIN) : DAEMON_BIN, '--mode', mode, '--state-dir', p.stateDir, '--socket', p.socket, '--config', p.configFile, ...extra]
}

export interface Reply { status: number, body: any, text: string, reusedSocket: boolean }

/** One HTTP request over a Unix socket as this process (root); JSON in and out (`body` is null when not JSON). */
export function call (socket: string, method: string, path: string, body?: unknown, opts: { agent?: Agent, timeoutMs?: number } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = request({
      socketPath: socket,
      method,
      path,
      ...(opts.agent !== undefined ? { agent: opts.agent } : {}),
      ...(opts.timeoutMs !== undefined ? { timeout: opts.timeoutMs } : {}),
      headers: payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}
    }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let parsed: unknown = null
        try { parsed = JSON.parse(text) } catch { parsed = null }
        resolve({ status: res.statusCode ?? 0, body: parsed, text, reusedSocket: req.reusedSocket })
      })
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end(payload)
  })
}

/** GET a path over a Unix socket; resolves with status and body text. */
export async function socketGet (socket: string, path: string, timeoutMs = 5000): Promise<{ status: number, body: string }> {
  const r = await call(socket, 'GET', path, undefined, { timeoutMs })
  return { status: r.status, body: r.text }
}

/**
 * tap's process-info hook adds itself to NODE_OPTIONS of every child it sees spawned. The bins under test must run as
 * they do in production: without it (it also makes each start slower, and as another user it fails writing to .tap/).
 */
export const NO_TAP_HOOKS = ['env', '-u', 'NODE_OPTIONS']

function exited (child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode)
  return new Promise(resolve => child.once('exit', (code) => resolve(code)))
}

/** The JSON lines of a log's text (pino writes one object a line). Pure. */
export function parseLogLines (text: string): LogLine[] {
  return text.split('\n').filter(l => l !== '').map(line => {
    try {
      return JSON.parse(line) as LogLine
    } catch {
      return { level: -1, raw: line }
    }
  })
}

/** Start a daemon and wait until it answers /api/v1/health; stopped (SIGTERM) in teardown. */
export async function startTestDaemon (t: Teardown, opts: DaemonOptions): Promise<TestDaemon> {
  if (opts.build !== false) ensureBuilt()
  const dir = opts.dir ?? tempDir(t)
  const p = daemonPaths(dir, opts.config)
  // A restart in the same dir appends to the same file: logs() starts where this process began.
  const from = existsSync(p.logFile) ? statSync(p.logFile).size : 0
  const out = openSync(p.logFile, 'a', 0o600)
  const node = [process.execPath, ...daemonArgs(opts.mode, p, opts.args)]
  const umask = opts.umask ?? (opts.mode === 'system' ? 0o077 : undefined)
  const setUmask = umask === undefined ? '' : `umask ${umask.toString(8).padStart(4, '0')}; `
  // As systemd does it: LISTEN_PID must be the daemon's own pid, so a shell sets it and then execs node. The umask is
  // set by the same shell (exec keeps it), as systemd sets UMask= before it execs the daemon.
  const listen = opts.listenFd === undefined ? '' : 'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=api '
  const argv = setUmask === '' && listen === '' ? node : ['/bin/sh', '-c', `${setUmask}${listen}exec "$0" "$@"`, ...node]
  const stdio: StdioOptions = ['ignore', out, out, ...(opts.listenFd === undefined ? [] : [opts.listenFd])]
  // --pdeathsig: a test process killed by tap's timeout takes its daemon with it instead of leaving an orphan. Every
  // step execs the next, so the child's pid is the daemon's.
  const drop = (opts.dropCaps ?? []).map(c => `-${c}`).join(',')
  const caps = drop === '' ? [] : ['--bounding-set', drop, '--inh-caps', drop]
  const full = [...(opts.wrap ?? []), 'setpriv', '--pdeathsig', 'SIGTERM', ...caps, '--', ...NO_TAP_HOOKS, ...argv]
  const child = spawn(full[0]!, full.slice(1), {
    cwd: dir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8', ...opts.env },
    stdio
  })
  closeSync(out)
  const log = (): string => existsSync(p.logFile) ? readFileSync(p.logFile, 'utf8') : ''
  const own = (): string => existsSync(p.logFile) ? readFileSync(p.logFile).subarray(from).toString('utf8') : ''
  const logs = (): LogLine[] => parseLogLines(own())
  const waitForLog = async (pred: (l: LogLine, i: number) => boolean, timeoutMs = 15_000): Promise<LogLine> => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const hit = logs().find(pred)
      if (hit !== undefined) return hit
      if (Date.now() > deadline) throw new Error(`no such log line within ${timeoutMs} ms:\n${own().slice(-3000)}`)
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }
  let stopping: Promise<number | null> | null = null
  const stop = (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      const code = await exited(child)
      clearTimeout(timer)
      return code
    })()
    return stopping
  }
  t.teardown(() => stop())
  const d: TestDaemon = { ...p, process: child, log, logs, waitForLog, stop }
  await opts.afterSpawn?.()
  if (opts.wait === false) return d
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 60_000)
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`nf-secretsd exited with ${child.exitCode ?? child.signalCode} before it was ready:\n${log()}`)
    }
    const health = await socketGet(opts.healthSocket ?? p.socket, '/api/v1/health', 2000).catch(() => null)
    if (health?.status === 200) break
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`nf-secretsd did not answer /api/v1/health within the timeout:\n${log()}`)
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  return d
}
