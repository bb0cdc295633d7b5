// Start-up to ready (spawn -> first 200 of /health) with 10,000 runs in the ledger and 5,000 secrets against an empty
// state dir, and the idle daemon's RSS against a bare `node -e 'setInterval(()=>{},1e3)'`.
import { spawn } from 'node:child_process'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { userInfo } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { layout, rssMb, startDaemon } from './daemon.js'
import { ratio, type Figure } from './report.js'
import { seedState } from './seed.js'
import { median } from './stats.js'

export interface StartupOptions { dir: string, repeats: number, runs: number, secrets: number }

async function readyTimes (dir: string, repeats: number, seed: (stateDir: string, runsRoot: string) => void): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < repeats; i++) {
    const d = join(dir, `start-${i}`)
    const l = layout(d)
    seed(l.stateDir, l.runsRoot)
    const daemon = await startDaemon(d)
    out.push(daemon.readyMs)
    await daemon.stop()
    rmSync(d, { recursive: true, force: true })
  }
  return out
}

export async function startupFigures (o: StartupOptions): Promise<Figure[]> {
  const me = userInfo()
  const big = await readyTimes(join(o.dir, 'big'), o.repeats, (stateDir, runsRoot) =>
    seedState({ stateDir, runsRoot, user: me.username, uid: me.uid, gid: me.gid, userSecrets: o.secrets / 2, workspaceSecrets: o.secrets / 2, runs: o.runs }))
  const empty = await readyTimes(join(o.dir, 'empty'), o.repeats, () => {})
  const b = median(big)
  const e = median(empty)
  return [{ figure: `start-up to ready, ${o.runs} runs + ${o.secrets} secrets ms`, value: b, baselineLabel: 'empty state', baseline: e, ratio: ratio(b, e), target: '< 2000 ms', met: b < 2000, note: `median of ${o.repeats}; ready = first 200 of /health after spawn` }]
}

export async function idleRssFigures (dir: string, waitMs: number): Promise<Figure[]> {
  const daemon = await startDaemon(join(dir, 'idle'))
  const bare = spawn(process.execPath, ['-e', 'setInterval(()=>{},1e3)'], { stdio: 'ignore' })
  try {
    await sleep(waitMs)
    const d = rssMb(daemon.pid)
    const b = rssMb(bare.pid!)
    const r = ratio(d, b)
    return [{ figure: 'idle daemon RSS after start MB', value: d, baselineLabel: "node -e 'setInterval(()=>{},1e3)'", baseline: b, ratio: r, target: 'ratio < 2.5', met: r < 2.5, note: `read ${waitMs / 1000} s after ready` }]
  } finally {
    bare.kill('SIGTERM')
    await daemon.stop()
  }
}
