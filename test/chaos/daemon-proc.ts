// Starting the suite's daemons: startTestDaemon without its build check. The suite builds once at its start
// (ensureBuilt), and a restart after a SIGKILL must not wait for a rebuild that an edit elsewhere in the tree would
// trigger, or the kills would stop landing at random moments of the daemon's own work.
import { startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js'

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
  const { noWait, ...rest } = opts
  return await startTestDaemon(t, { ...rest, dir: opts.dir ?? tempDir(t, 'nfs-chaos-'), build: false, wait: noWait !== true, readyTimeoutMs: 120_000 })
}

/** SIGKILL and wait for the exit. */
export async function killHard (d: TestDaemon): Promise<void> {
  if (d.process.exitCode !== null || d.process.signalCode !== null) return
  const gone = new Promise(resolve => d.process.once('exit', resolve))
  d.process.kill('SIGKILL')
  await gone
}
