// A real nf-secretsd for the benchmarks: the compiled daemon (dist/daemon/main.js) in user mode on a temp state dir
// and socket, as the tests start one (test/helpers/daemon.ts), plus what a benchmark reads from outside: the time
// to answer /health, RSS and CPU ticks from /proc, and JSON over the socket.
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs'
import { request } from 'node:http'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { nowMs } from './stats.js'

/** The repository, found from this file whether it runs as bench/x.ts or compiled under dist-bench/bench/x.js. */
export function repoRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json')) || !existsSync(join(dir, 'daemon'))) {
    const up = dirname(dir)
    if (up === dir) throw new Error('cannot find the repository root')
    dir = up
  }
  return dir
}

export const DAEMON_BIN = (): string => join(repoRoot(), 'dist', 'daemon', 'main.js')

/**
 * The environment the shipped user unit gives the daemon (its `Environment=` lines: glibc's arenas, V8's young
 * generation), so that the bench measures the daemon as systemd starts it. The values are plain words on purpose:
 * a quoted or spaced one would need systemd's own quoting rules, so it stops the bench instead of being misread.
 */
export function unitEnvironment (): Record<string, string> {
  const env: Record<string, string> = {}
  for (const raw of readFileSync(join(repoRoot(), 'systemd', 'user', 'nf-secretsd.service'), 'utf8').split('\n')) {
    const line = raw.trim()
    if (!line.startsWith('Environment=')) continue
    for (const word of line.slice('Environment='.length).split(/\s+/).filter(w => w !== '')) {
      const eq = word.indexOf('=')
      if (eq <= 0 || /["'\\%$]/.test(word)) throw new Error(`the user unit's Environment= is not a plain NAME=value: ${line}`)
      env[word.slice(0, eq)] = word.slice(eq + 1)
    }
  }
  return env
}

export interface DaemonLayout { dir: string, socket: string, stateDir: string, runsRoot: string, configFile: string, logFile: string }

export function layout (dir: string): DaemonLayout {
  return { dir, socket: join(dir, 'sock', 'api.sock'), stateDir: join(dir, 'state'), runsRoot: join(dir, 'runs'), configFile: join(dir, 'config.json'), logFile: join(dir, 'daemon.log') }
}

export interface BenchDaemon extends DaemonLayout {
  child: ChildProcess
  pid: number
  /** spawn to the first 200 of /api/v1/health, in ms */
  readyMs: number
  stop (): Promise<void>
}

export interface StartOptions {
  config?: Record<string, unknown>
  env?: NodeJS.ProcessEnv
  timeoutMs?: number
}

export async function startDaemon (dir: string, opts: StartOptions = {}): Promise<BenchDaemon> {
  const bin = DAEMON_BIN()
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`npx tsc -p tsconfig.build.json\` first`)
  const l = layout(dir)
  mkdirSync(dir, { recursive: true })
  // warn, not debug: a log line per request would measure pino's stdout as much as the daemon.
  writeFileSync(l.configFile, JSON.stringify({ hpc: { runsRoot: l.runsRoot }, logLevel: 'warn', ...opts.config }, null, 2), { mode: 0o600 })
  const out = openSync(l.logFile, 'a', 0o600)
  const t0 = nowMs()
  const child = spawn(process.execPath, [bin, '--mode', 'user', '--state-dir', l.stateDir, '--socket', l.socket, '--config', l.configFile], {
    cwd: dir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8', ...unitEnvironment(), ...opts.env },
    stdio: ['ignore', out, out]
  })
  closeSync(out)
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
    await exited
    clearTimeout(timer)
  }
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000)
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nf-secretsd exited early:\n${readFileSync(l.logFile, 'utf8').slice(-2000)}`)
    const r = await callJson(l.socket, 'GET', '/api/v1/health', undefined, 1000).catch(() => null)
    if (r?.status === 200) break
    if (Date.now() > deadline) { await stop(); throw new Error('nf-secretsd did not become ready') }
    // A short poll: the time to ready is itself a figure.
    await sleep(10)
  }
  return { ...l, child, pid: child.pid!, readyMs: nowMs() - t0, stop }
}

export interface Reply { status: number, body: any, /** the bytes as sent */ raw: string }

/** One JSON request over the Unix socket. */
export function callJson (socket: string, method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<Reply> {
  return new Promise((resolvePromise, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body)
    const req = request({ socketPath: socket, method, path, timeout: timeoutMs, headers: payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        let parsed: unknown = text
        try { parsed = JSON.parse(text) } catch {}
        resolvePromise({ status: res.statusCode ?? 0, body: parsed, raw: text })
      })
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end(payload)
  })
}

/** Resident set size of a process in MB, from /proc/PID/status. */
export function rssMb (pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? Number.NaN : Number(m[1]) / 1024
}

/** utime + stime of a process in clock ticks (USER_HZ, 100 on Linux). */
export function cpuTicks (pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(fields[11]) + Number(fields[12])
}

/** CPU use of a process over `ms`, in percent of one core. */
export async function cpuPercent (pid: number, ms: number): Promise<number> {
  const a = cpuTicks(pid)
  const t = nowMs()
  await sleep(ms)
  return ((cpuTicks(pid) - a) / 100) / ((nowMs() - t) / 1000) * 100
}

/** Wait until the process has used less than `percent` of a core over a window (it finished settling in). */
export async function settle (pid: number, percent = 5, windowMs = 1000, maxMs = 120_000): Promise<number> {
  const t0 = nowMs()
  while (nowMs() - t0 < maxMs) {
    if (await cpuPercent(pid, windowMs) < percent) break
  }
  return nowMs() - t0
}
