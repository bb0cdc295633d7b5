// The CLI's cost per call (issue 17): `nf-secrets whoami` (one small request) against the running daemon beside a bare `node -e 0`,
// the two alternated (A B A B ...) so that load from elsewhere hits both alike. Wall time is spawn to exit; peak RSS
// is the kernel's maxrss of the finished process, read through GNU time's %M (the one number Node cannot give for a
// child). Figures never gate anything.
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { repoRoot, settle, type BenchDaemon } from './daemon.js'
import { ratio, type Figure } from './report.js'
import { median, nowMs } from './stats.js'

const GNU_TIME = '/usr/bin/time'

interface Sample { wallMs: number, peakMb: number }

/** One run to its end: wall ms, and peak RSS in MB (NaN without GNU time). */
function once (argv: string[], env: NodeJS.ProcessEnv): Promise<Sample> {
  const timed = existsSync(GNU_TIME)
  const [cmd, args] = timed ? [GNU_TIME, ['-f', 'maxrss=%M', ...argv]] : [argv[0]!, argv.slice(1)]
  return new Promise((resolve, reject) => {
    const t0 = nowMs()
    const child = spawn(cmd, args, { env, stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    child.stderr.on('data', (c: Buffer) => { err += c.toString('utf8') })
    child.on('error', reject)
    child.on('close', (code) => {
      const wallMs = nowMs() - t0
      if (code !== 0) return reject(new Error(`${argv.join(' ')} exited ${code}: ${err.slice(-500)}`))
      const m = /maxrss=(\d+)/.exec(err)
      resolve({ wallMs, peakMb: m === null ? Number.NaN : Number(m[1]) / 1024 })
    })
  })
}

export async function cliFigures (o: { daemon: BenchDaemon, samples: number }): Promise<Figure[]> {
  // The bin the package ships (package.json's `nf-secrets`: the bundle of scripts/bundle-cli.mjs), not tsc's main.js.
  const pkg = JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as { bin: Record<string, string> }
  const cli = [process.execPath, join(repoRoot(), pkg.bin['nf-secrets']!), '--socket', o.daemon.socket, 'whoami']
  const bare = [process.execPath, '-e', '0']
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8' }
  // A user's daemon has long finished starting: wait until this one is quiet (with --only cli it has just become
  // ready, and its first seconds of work after ready made the first 9 of 20 calls 2 to 4 times slower than the rest).
  // Then three warm-ups each: the first run pays for the page cache, the next ones for the daemon's JIT of the route.
  await settle(o.daemon.pid)
  for (let i = 0; i < 3; i++) {
    await once(cli, env)
    await once(bare, env)
  }
  const a: Sample[] = []
  const b: Sample[] = []
  for (let i = 0; i < o.samples; i++) {
    a.push(await once(cli, env))
    b.push(await once(bare, env))
  }
  const wall = median(a.map(s => s.wallMs))
  const wallBase = median(b.map(s => s.wallMs))
  const peak = median(a.map(s => s.peakMb))
  const peakBase = median(b.map(s => s.peakMb))
  const wr = median(a.map((s, i) => s.wallMs / b[i]!.wallMs))
  const pr = ratio(peak, peakBase)
  const note = `median of ${o.samples} after the daemon settled and 3 warm-ups, alternated with the baseline; wall ratio is the median of the pairs' ratios`
  return [
    { figure: 'CLI `whoami` wall ms', value: wall, baselineLabel: 'node -e 0', baseline: wallBase, ratio: wr, target: 'ratio <= 2', met: wr <= 2, note },
    { figure: 'CLI `whoami` peak RSS MB', value: peak, baselineLabel: 'node -e 0', baseline: peakBase, ratio: pr, target: 'ratio <= 1.5', met: Number.isFinite(pr) ? pr <= 1.5 : null, note: `maxrss from ${GNU_TIME} -f %M` }
  ]
}
