// A hostile local user's tools, and a neighbour's stopwatch, as child processes running as real Unix users: the
// daemon tells them apart by SO_PEERCRED only, so they must really be those users. Shared by the limits attack tests
// and the chaos suite's hostile-neighbour part.
import { spawn, type ChildProcess } from 'node:child_process'
import { tmpdir } from 'node:os'
import { NO_TAP_HOOKS } from './daemon.js'
import { json, runNode } from './cli.js'

interface Teardown { teardown: (fn: () => unknown) => void }

// Opens N connections that never send a byte, in batches, then asks once more with a request: that answer comes after
// the daemon accepted every earlier one, so the counts reported then are final. One JSON line when opened, one more
// when the daemon has closed every one of them (the idle timeout; never, without it).
const HOLD = `
const net = require('node:net')
const [path, nText] = process.argv.slice(1)
const n = Number(nText)
const socks = []
const errors = {}
let refused = 0
let closed = 0
let reported = false
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n')
const check = () => { if (reported && closed === socks.length) say({ type: 'all-closed', closed }) }
function open (send, tries = 0) {
  return new Promise((resolve) => {
    const s = net.connect(path)
    let got = ''
    let counted = false
    s.on('data', (d) => {
      got += d
      if (!counted && got.includes('NFS_ERR_LIMIT')) { counted = true; refused++ }
      if (send && got.includes('\\r\\n\\r\\n')) resolve()
    })
    s.on('connect', () => { if (send) s.write('GET /api/v1/health HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'); else resolve() })
    s.on('error', (e) => {
      // A full accept backlog (EAGAIN) is the kernel's pushback, not the daemon's answer: try again, as an attacker would.
      if (e.code === 'EAGAIN' && tries < 200) { retry = true; setTimeout(() => open(send, tries + 1).then(resolve), 10); return }
      errors[e.code] = (errors[e.code] || 0) + 1
      resolve()
    })
    let retry = false
    s.on('close', () => { if (retry) return; closed++; resolve(); check() })
    if (tries === 0) socks.push(s)
  })
}
;(async () => {
  for (let i = 0; i < n; i += 50) await Promise.all(Array.from({ length: Math.min(50, n - i) }, () => open(false)))
  await open(true)
  setTimeout(() => {
    reported = true
    say({ type: 'opened', attempted: socks.length, refused, open: socks.length - closed, errors })
    check()
  }, 300)
})()
process.stdin.on('end', () => process.exit(0))
process.stdin.resume()
`

export interface HoldReport { attempted: number, refused: number, open: number, errors: Record<string, number> }

export interface Holder {
  opened: HoldReport
  /** resolves once the daemon has closed every one of the connections */
  allClosed: Promise<void>
  stop: () => void
}

/** `user` opens `n` idle connections to `socket` (with its fd soft limit raised to fit them). */
export function holdConnections (t: Teardown, user: string, socket: string, n: number): Promise<Holder> {
  const child: ChildProcess = spawn('runuser', ['-u', user, '--', 'bash', '-c', `ulimit -n ${n + 200} && exec "$@"`, 'hold', ...NO_TAP_HOOKS, process.execPath, '-e', HOLD, socket, String(n)], {
    env: { PATH: process.env.PATH, LANG: 'C.UTF-8' }, cwd: tmpdir(), stdio: ['pipe', 'pipe', 'pipe']
  })
  // runuser's child is the user's: it ends when its stdin does.
  const stop = (): void => { child.stdin!.end(); if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM') }
  t.teardown(stop)
  let buf = ''
  let err = ''
  const waiters: Array<{ type: string, resolve: (o: any) => void }> = []
  const seen: Record<string, unknown> = {}
  child.stderr!.on('data', (c: Buffer) => { err += c.toString() })
  child.stdout!.on('data', (c: Buffer) => {
    buf += c.toString()
    let i
    while ((i = buf.indexOf('\n')) >= 0) {
      const o = json<{ type: string }>(buf.slice(0, i))
      buf = buf.slice(i + 1)
      seen[o.type] = o
      for (const w of waiters.filter(w => w.type === o.type)) w.resolve(o)
    }
  })
  const next = (type: string): Promise<any> => seen[type] !== undefined
    ? Promise.resolve(seen[type])
    : new Promise((resolve, reject) => {
      waiters.push({ type, resolve })
      child.once('close', (code) => { if (seen[type] === undefined) reject(new Error(`holder ended (${code}) before ${type}: ${err}`)) })
    })
  return next('opened').then((opened: HoldReport) => ({ opened, allClosed: next('all-closed').then(() => {}), stop }))
}

// `count` GETs one after another over one keep-alive connection, as the user; each one's status and milliseconds.
const TIMED = `
const http = require('node:http')
const [path, url, countText] = process.argv.slice(1)
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
const one = () => new Promise((resolve) => {
  const start = process.hrtime.bigint()
  const req = http.get({ socketPath: path, path: url, agent }, (res) => {
    res.resume()
    res.on('end', () => resolve({ status: res.statusCode, ms: Number(process.hrtime.bigint() - start) / 1e6 }))
  })
  req.on('error', (e) => resolve({ status: 0, code: e.code, ms: Number(process.hrtime.bigint() - start) / 1e6 }))
})
;(async () => {
  const out = []
  for (let i = 0; i < Number(countText); i++) out.push(await one())
  agent.destroy()
  process.stdout.write(JSON.stringify(out))
})()
`

export interface Timings { statuses: number[], ms: number[], p50: number, p99: number, max: number }

export function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)]!
}

/** Time `count` GETs of `url` as `user`: reported by the tests, asserted only in the reliability suite. */
export async function timeGets (user: string, socket: string, url: string, count: number): Promise<Timings> {
  const r = await runNode('-e', [TIMED, socket, url, String(count)], { user, timeoutMs: 120_000 })
  if (r.code !== 0) throw new Error(`timed GETs failed (${r.code}): ${r.stderr}`)
  const rows = json<Array<{ status: number, ms: number }>>(r.stdout)
  const ms = rows.map(x => x.ms)
  const sorted = [...ms].sort((a, b) => a - b)
  return { statuses: rows.map(x => x.status), ms, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? NaN }
}
