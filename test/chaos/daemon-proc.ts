// Starting the suite's daemons. Like startTestDaemon, but without its build check: the suite builds once at its
// start (ensureBuilt), and a restart after a SIGKILL must not wait for a rebuild that an edit elsewhere in the tree
// would trigger, or the kills would stop landing at random moments of the daemon's own work.
import { spawn } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { daemonArgs, daemonPaths, socketGet, tempDir, type TestDaemon } from '../helpers/daemon.js'

interface Teardown { teardown: (fn: () => unknown) => void }

export interface SpawnOptions {
  mode: 'user' | 'system'
  dir?: string
  config?: Record<string, unknown>
  env?: NodeJS.ProcessEnv
  /** resolve as soon as the process is spawned, without waiting for /health (to kill it while it starts) */
  noWait?: boolean
}

export async function spawnDaemon (t: Teardown, opts: SpawnOptions): Promise<TestDaemon> {
  const dir = opts.dir ?? tempDir(t, 'nfs-chaos-')
  const p = daemonPaths(dir, opts.config)
  const out = openSync(p.logFile, 'a', 0o600)
  const child = spawn(process.execPath, daemonArgs(opts.mode, p), {
    cwd: dir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8', ...opts.env },
    stdio: ['ignore', out, out]
  })
  closeSync(out)
  const done = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)))
  let stopping: Promise<number | null> | null = null
  const stop = (): Promise<number | null> => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
      const code = await done
      clearTimeout(timer)
      return code
    })()
    return stopping
  }
  t.teardown(stop)
  const log = (): string => existsSync(p.logFile) ? readFileSync(p.logFile, 'utf8') : ''
  const d: TestDaemon = { ...p, process: child, log, stop }
  if (opts.noWait === true) return d
  const deadline = Date.now() + 120_000
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`nf-secretsd exited with ${child.exitCode ?? child.signalCode} before it was ready:\n${log().slice(-3000)}`)
    const health = await socketGet(p.socket, '/api/v1/health', 2000).catch(() => null)
    if (health?.status === 200) return d
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`nf-secretsd did not answer /api/v1/health in time:\n${log().slice(-3000)}`)
    }
    await sleep(50)
  }
}

/** SIGKILL and wait for the exit. */
export async function killHard (d: TestDaemon): Promise<void> {
  if (d.process.exitCode !== null || d.process.signalCode !== null) return
  const gone = new Promise(resolve => d.process.once('exit', resolve))
  d.process.kill('SIGKILL')
  await gone
}
