// Start-up to ready (spawn -> first 200 of /health) with 10,000 ended runs (archived) and 5,000 secrets against an empty
// state dir, and the idle daemon's RSS against a bare `node -e 'setInterval(()=>{},1e3)'`.
import { spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { userInfo } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { layout, rssMb, startDaemon, unitEnvironment } from './daemon.js'
import { ratio, type Figure } from './report.js'
import { seedState } from './seed.js'
import { median } from './stats.js'

export interface StartupOptions { dir: string, repeats: number, runs: number, secrets: number }

/** One start: seed the state dir, spawn, time to the first 200 of /health, stop, remove. */
async function readyTime (d: string, seed: (stateDir: string, runsRoot: string) => void): Promise<number> {
  const l = layout(d)
  seed(l.stateDir, l.runsRoot)
  const daemon = await startDaemon(d)
  await daemon.stop()
  rmSync(d, { recursive: true, force: true })
  return daemon.readyMs
}

export async function startupFigures (o: StartupOptions): Promise<Figure[]> {
  const me = userInfo()
  const big: number[] = []
  const empty: number[] = []
  // In turn, big then empty, so that load from elsewhere hits both alike.
  for (let i = 0; i < o.repeats; i++) {
    big.push(await readyTime(join(o.dir, 'big', `start-${i}`), (stateDir, runsRoot) =>
      seedState({ stateDir, runsRoot, user: me.username, uid: me.uid, gid: me.gid, userSecrets: o.secrets / 2, workspaceSecrets: o.secrets / 2, runs: o.runs })))
    empty.push(await readyTime(join(o.dir, 'empty', `start-${i}`), () => {}))
  }
  const b = median(big)
  const e = median(empty)
  return [{ figure: `start-up to ready, ${o.runs} runs + ${o.secrets} secrets ms`, value: b, baselineLabel: 'empty state', baseline: e, ratio: ratio(b, e), target: '< 1.15 x empty', met: b < 1.15 * e, note: `median of ${o.repeats}, in turn with the empty start; ready = first 200 of /health after spawn; the runs in runs-archive/, where the daemon keeps runs settled for 5 minutes (not read at start)` }]
}

export async function idleRssFigures (dir: string, waitMs: number): Promise<Figure[]> {
  const daemon = await startDaemon(join(dir, 'idle'))
  // The bare node gets the same environment as the daemon (the units' memory settings, unitEnvironment()): without
  // them its RSS was measured on other terms than the daemon's, and the ratio flattered the daemon.
  const bare = spawn(process.execPath, ['-e', 'setInterval(()=>{},1e3)'], { stdio: 'ignore', env: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8', ...unitEnvironment() } })
  try {
    await sleep(waitMs)
    const d = rssMb(daemon.pid)
    const b = rssMb(bare.pid!)
    const r = ratio(d, b)
    return [{ figure: 'idle daemon RSS after start MB', value: d, baselineLabel: "node -e 'setInterval(()=>{},1e3)', the units' environment", baseline: b, ratio: r, target: 'ratio < 2.5', met: r < 2.5, note: `read ${waitMs / 1000} s after ready` }]
  } finally {
    bare.kill('SIGTERM')
    await daemon.stop()
  }
}
