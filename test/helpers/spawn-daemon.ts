// A real nf-secretsd in a child process, for the tests that need a process: signals, socket activation, restarts.
// It runs the compiled daemon (dist/, built by `npm test` before tap), because a child on ts-node's loader takes
// tens of seconds to start on a loaded machine. Logs (pino JSON on stdout) are kept and parsed for assertions on
// their fields; stderr is kept as text.
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpRequest, type Agent } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { once } from 'node:events'

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const DAEMON_BIN = join(REPO, 'dist', 'daemon', 'main.js')

export interface Teardown { teardown: (fn: () => void | Promise<void>) => void }

export type LogLine = Record<string, unknown> & { level: number, msg?: string }

export interface DaemonDirs {
  dir: string
  stateDir: string
  socket: string
  configFile: string
  runsRoot: string
  launchDir: string
}

/** A private temp tree for one daemon: state, socket dir, config file, hpc runs root, a launch dir. */
export function daemonDirs (t: Teardown, prefix = 'nfs-ops-'): DaemonDirs {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const d = {
    dir,
    stateDir: join(dir, 'state'),
    socket: join(dir, 'sock', 'api.sock'),
    configFile: join(dir, 'config.json'),
    runsRoot: join(dir, 'runs'),
    launchDir: join(dir, 'launch')
  }
  mkdirSync(d.launchDir)
  return d
}

export function writeConfig (dirs: DaemonDirs, config: Record<string, unknown>): void {
  writeFileSync(dirs.configFile, JSON.stringify({ hpc: { runsRoot: dirs.runsRoot }, ...config }, null, 2))
}

export interface SpawnOptions {
  /** extra arguments after the standard --mode user --state-dir --socket --config */
  args?: string[]
  env?: NodeJS.ProcessEnv
  /** a listening socket's fd handed over as fd 3 with LISTEN_FDS=1 and LISTEN_PID set to the daemon's pid */
  listenFd?: number
  /** where GET /api/v1/health is asked until it answers (default dirs.socket) */
  healthSocket?: string
  /** runs right after the spawn, before the health wait (e.g. the test closes its copy of a handed-over socket) */
  afterSpawn?: () => void | Promise<void>
}

export interface SpawnedDaemon {
  child: ChildProcess
  logs: LogLine[]
  stderr: () => string
  /** resolves with the exit once the child is gone */
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** send a signal and wait for the exit */
  stop: (signal?: NodeJS.Signals) => Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  waitForLog: (pred: (l: LogLine) => boolean, timeoutMs?: number) => Promise<LogLine>
}

export function requireBuiltDaemon (): void {
  if (!existsSync(DAEMON_BIN)) throw new Error(`${DAEMON_BIN} is missing: run \`npm run build\` first (npm test does)`)
}

export async function spawnDaemon (t: Teardown, dirs: DaemonDirs, opts: SpawnOptions = {}): Promise<SpawnedDaemon> {
  requireBuiltDaemon()
  const argv = [DAEMON_BIN, '--mode', 'user', '--state-dir', dirs.stateDir, '--socket', dirs.socket, '--config', dirs.configFile, ...(opts.args ?? [])]
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env }
  // tap's own loaders and coverage hooks have no business in the daemon.
  delete env.NODE_OPTIONS
  let child: ChildProcess
  if (opts.listenFd !== undefined) {
    // As systemd does it: the pid in LISTEN_PID must be the daemon's own, so the shell sets it and then execs node.
    const stdio: StdioOptions = ['ignore', 'pipe', 'pipe', opts.listenFd]
    child = spawn('/bin/sh', ['-c', 'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=api exec "$0" "$@"', process.execPath, ...argv], { env, stdio })
  } else {
    child = spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'pipe'] })
  }
  const logs: LogLine[] = []
  const waiters = new Set<() => void>()
  let partial = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as LogLine)
      } catch {
        logs.push({ level: -1, raw: line })
      }
    }
    for (const w of waiters) w()
  })
  let err = ''
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { err += chunk })
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const daemon: SpawnedDaemon = {
    child,
    logs,
    stderr: () => err,
    exited,
    stop: async (signal = 'SIGTERM') => {
      child.kill(signal)
      return await exited
    },
    waitForLog: (pred, timeoutMs = 15_000) => new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = logs.find(pred)
        if (hit === undefined) return
        clearTimeout(timer)
        waiters.delete(check)
        resolve(hit)
      }
      const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`no such log line within ${timeoutMs} ms; stderr: ${err}`)) }, timeoutMs)
      waiters.add(check)
      check()
    })
  }
  await opts.afterSpawn?.()
  await waitHealthy(opts.healthSocket ?? dirs.socket, exited, () => err)
  return daemon
}

async function waitHealthy (socket: string, exited: Promise<unknown>, stderr: () => string, timeoutMs = 60_000): Promise<void> {
  let gone = false
  void exited.then(() => { gone = true })
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (gone) throw new Error(`the daemon exited before it was healthy: ${stderr()}`)
    try {
      const res = await call(socket, 'GET', '/api/v1/health')
      if (res.status === 200) return
    } catch {
      // not listening yet
    }
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  throw new Error(`the daemon was not healthy within ${timeoutMs} ms: ${stderr()}`)
}

export interface Reply { status: number, body: any, text: string, reusedSocket: boolean }

/** One HTTP request over the Unix socket; JSON in and out. */
export function call (socket: string, method: string, path: string, body?: unknown, agent?: Agent): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = httpRequest({
      socketPath: socket,
      method,
      path,
      ...(agent !== undefined ? { agent } : {}),
      headers: payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}
    }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (c: string) => { text += c }).on('end', () => {
        let parsed: unknown = null
        try { parsed = JSON.parse(text) } catch { parsed = null }
        resolve({ status: res.statusCode ?? 0, body: parsed, text, reusedSocket: req.reusedSocket })
      })
    })
    req.on('error', reject)
    req.end(payload)
  })
}
