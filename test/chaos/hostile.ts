// 7. Hostile neighbour: bob does everything the security review did, all at once, for a bounded time: idle
// connections far beyond connectionsPerUid, arms up to liveRunsPerUser and on against it, revokes whose children (the
// cleanup `find` the daemon runs as him) he SIGSTOPs as they appear, watch roots up to the limit with 100 ms polling,
// and his history rewritten every 300 ms with a 1 MB command. Meanwhile alice and carol arm, run and revoke as they
// always do. Nothing of theirs may be lost, leaked or delayed past its deadline; the daemon's RSS stays bounded; and
// alice's GET /secrets is always answered, and answered while bob's attack runs (not only once it is over). How long
// her GETs took is printed beside a baseline taken in the same run before the attack, not asserted: a test never
// judges speed (bench/ does); under a loaded CI machine a 50 ms p99 failed for reasons not bob's, and a 2 s bound is
// the same kind of line drawn later.
import type { Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { tempDir } from '../helpers/daemon.js'
import { runCli, runNode, json, type RunResult } from '../helpers/cli.js'
import { ensureUsers } from '../helpers/users.js'
import { holdConnections, timeGets } from '../helpers/hostile.js'
import { readLedger, settled, waitUntil, runDirs } from './api.js'
import { spawnDaemon } from './daemon-proc.js'
import type { Harness } from './harness.js'

const ATTACK_MS = 30_000
const TTL_S = 2
// An expiry or a revoke that takes longer than this is a victim delayed by the neighbour (the pass runs every 500 ms).
const DEADLINE_MS = 10_000
const RSS_BOUND_MB = 150

// bob's attack, in one process running as bob. Prints one JSON line of what each attack got back, at its end.
const ATTACK = `
const http = require('node:http'); const fs = require('node:fs'); const path = require('node:path')
const cfg = JSON.parse(process.argv[1])
const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })
const codes = {}
const count = (k) => { codes[k] = (codes[k] || 0) + 1 }
const api = (method, url, body) => new Promise((resolve) => {
  const payload = body === undefined ? undefined : JSON.stringify(body)
  const req = http.request({ socketPath: cfg.socket, method, path: url, agent, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {} }, (res) => {
    let t = ''; res.on('data', (d) => { t += d }); res.on('end', () => { let b = null; try { b = JSON.parse(t) } catch {} resolve({ status: res.statusCode, body: b }) })
  })
  req.on('error', (e) => resolve({ status: 0, body: { code: e.code } }))
  req.end(payload)
})
const end = Date.now() + cfg.ms
const stopped = new Set()
// SIGSTOP every child the daemon runs as bob (the cleanup of his revokes), as it appears.
const me = process.pid
const stopper = setInterval(() => {
  for (const p of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(p) || Number(p) === me) continue
    try {
      const st = fs.readFileSync('/proc/' + p + '/status', 'utf8')
      const uid = Number(/\\nUid:\\s+(\\d+)/.exec(st)[1]); const ppid = Number(/\\nPPid:\\s+(\\d+)/.exec(st)[1])
      // Only the daemon's own children: other tests on this machine may run as bob too.
      if (uid !== cfg.uid || ppid !== cfg.daemonPid) continue
      process.kill(Number(p), 'SIGSTOP'); if (!stopped.has(p)) { stopped.add(p); count('stopped') }
    } catch {}
  }
}, 20)
;(async () => {
  for (const w of cfg.watchDirs) { const r = await api('POST', '/api/v1/watches', { root: w, depth: 2, poll: true, intervalMs: 100 }); count('watch ' + (r.body && r.body.code || r.status)) }
  const hist = path.join(cfg.launchDir, '.nextflow', 'history')
  fs.mkdirSync(path.dirname(hist), { recursive: true })
  let n = 0
  const bomb = setInterval(() => {
    n++
    const line = ['2026-12-02 06:00:00', '-', 'hostile_' + n, '-', 'abc', '00000000-0000-4000-8000-' + String(n).padStart(12, '0'), 'nextflow run ' + 'x'.repeat(1 << 20)].join('\\t')
    fs.writeFileSync(hist, line + '\\n'); count('history rewrites')
  }, 300)
  const mine = []
  while (Date.now() < end) {
    const r = await api('POST', '/api/v1/runs', { mode: 'arm', launchDir: cfg.launchDir, ttlSeconds: 3600 })
    if (r.status === 201) { mine.push(r.body.runId); count('arm 201') } else { count('arm ' + (r.body && r.body.code || r.status)) }
    if (r.status === 429 && mine.length > 0) {
      // At the limit: revoke one (its cleanup runs as bob, and is stopped) and go again.
      const id = mine.splice(Math.floor(Math.random() * mine.length), 1)[0]
      const d = await api('DELETE', '/api/v1/runs/' + id); count('revoke ' + d.status)
      await new Promise((res) => setTimeout(res, 100))
    }
  }
  clearInterval(bomb); clearInterval(stopper)
  for (const p of stopped) { try { process.kill(Number(p), 'SIGCONT') } catch {} }
  agent.destroy()
  process.stdout.write(JSON.stringify(codes) + '\\n')
})()
`

function rssMb (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m === null ? 0 : Number(m[1]) / 1024
}

export async function hostileSection (t: Test, h: Harness): Promise<void> {
  const [alice, bob, carol] = ensureUsers(['alice', 'bob', 'carol'])
  const dir = tempDir(t, 'nfs-chaos-hostile-')
  const keyDir = mkdtempSync(join(tmpdir(), 'nfs-chaos-key-'))
  t.teardown(() => rmSync(keyDir, { recursive: true, force: true }))
  const keyFile = join(keyDir, 'master.key')
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  const d = await spawnDaemon(t, {
    mode: 'system',
    dir,
    config: {
      keyFile,
      logLevel: 'info',
      runs: { livenessIntervalMs: 500 },
      limits: { connectionsPerUid: 64, liveRunsPerUser: 20, idleTimeoutSeconds: 5, watchRootsPerUser: 3, watchedDirsPerUser: 2000, minPollIntervalMs: 1000 }
    }
  })
  await h.listen(d.socket)
  const pid = d.process.pid!
  const own = (u: { uid: number, gid: number }, p: string): string => { mkdirSync(p, { recursive: true }); chownSync(p, u.uid, u.gid); return p }
  const cli = async (user: string, args: string[], input?: string): Promise<RunResult> => {
    const r = await runCli(args, { user, env: { NF_SECRETS_SOCKET: d.socket }, timeoutMs: 120_000, ...(input !== undefined ? { input } : {}) })
    h.addText(`hostile CLI output of ${user}`, r.stdout + r.stderr)
    return r
  }
  const victims = [alice!, carol!]
  const values = new Map<string, string>()
  for (const v of victims) {
    values.set(v.name, h.canary(`hostile-${v.name}`))
    t.equal((await cli(v.name, ['secrets', 'add', 'OWN_TOKEN'], values.get(v.name))).code, 0, `${v.name} adds a secret`)
  }
  const before = { rss: rssMb(pid) }
  // The figure the attack's GETs are printed beside: the same GETs on the same machine, bob idle.
  const baseline = await timeGets('alice', d.socket, '/api/v1/secrets', 50)

  // The attack runs in the background for ATTACK_MS.
  const bobRoot = own(bob!, join(dir, 'bob'))
  const watchDirs = [0, 1, 2, 3, 4].map(i => own(bob!, join(bobRoot, `w${i}`)))
  for (const w of watchDirs) for (let i = 0; i < 50; i++) own(bob!, join(w, `d${i}`))
  const launchDir = own(bob!, join(watchDirs[0]!, 'proj'))
  // Ends every loop of the attack and the victims at once (a signal: the loops read it from each other's tasks).
  const attackOver = new AbortController()
  const rss: number[] = []
  const sampler = setInterval(() => { try { rss.push(rssMb(pid)) } catch {} }, 500)
  const attack = runNode('-e', [ATTACK, JSON.stringify({ socket: d.socket, uid: bob!.uid, daemonPid: pid, launchDir, watchDirs, ms: ATTACK_MS })], { user: 'bob', timeoutMs: ATTACK_MS + 120_000 })
  const holding = (async () => {
    let rounds = 0
    try {
      while (!attackOver.signal.aborted) {
        const hold = await holdConnections(t, 'bob', d.socket, 300)
        rounds++
        await Promise.race([hold.allClosed, new Promise(resolve => setTimeout(resolve, 15_000))])
        hold.stop()
      }
    } catch (err) {
      if (!attackOver.signal.aborted) throw err
    }
    return rounds
  })()

  // The victims, meanwhile: each in turn arms with a short TTL (must expire on time), runs a command (must get its own
  // value, and be revoked at its end), arms and revokes; alice's GET /secrets is timed throughout.
  const late: string[] = []
  const wrong: string[] = []
  const timings: number[] = []
  const victim = async (v: { name: string, uid: number, gid: number }): Promise<void> => {
    const ld = own(v, join(dir, `launch-${v.name}`))
    while (!attackOver.signal.aborted) {
      const armed = await cli(v.name, ['arm', '--dir', ld, '--ttl', `${TTL_S}s`, '--format', 'json'])
      if (armed.code !== 0) { wrong.push(`${v.name} arm: ${armed.stderr.trim()}`); continue }
      const { runId } = json<{ runId: string }>(armed.stdout)
      const start = Date.now()
      try {
        await waitUntil(`${v.name}'s ${TTL_S}s arm expiring`, () => readLedger(d.stateDir).some(r => r.runId === runId && settled(r)), TTL_S * 1000 + DEADLINE_MS, 100)
      } catch {
        late.push(`${v.name}'s arm ${runId} was not expired and revoked ${TTL_S}s + ${DEADLINE_MS / 1000}s after its start (${Date.now() - start} ms)`)
      }
      h.figures.runs++
      const ran = await cli(v.name, ['run', '--', 'true'], undefined)
      if (ran.code !== 0) wrong.push(`${v.name} run: ${ran.stderr.trim()}`)
      const again = await cli(v.name, ['arm', '--dir', ld, '--format', 'json'])
      if (again.code === 0) {
        const { runId: id, env } = json<{ runId: string, env: Record<string, string> }>(again.stdout)
        const store = JSON.parse(readFileSync(env.NXF_SECRETS_FILE!, 'utf8')) as Array<{ name: string, value: string }>
        if (store.find(e => e.name === 'OWN_TOKEN')?.value !== values.get(v.name)) wrong.push(`${v.name}'s run ${id} lacks its own value`)
        const rv = await cli(v.name, ['runs', 'revoke', id])
        if (rv.code !== 0) wrong.push(`${v.name} revoke: ${rv.stderr.trim()}`)
      } else wrong.push(`${v.name} second arm: ${again.stderr.trim()}`)
      h.figures.runs += 2
    }
  }
  let refusedGets = 0
  // GETs answered in rounds that ended before the attack did: alice served while bob was at every limit. A daemon
  // that starved her (one that served bob's connections first, or blocked on his stopped children) answers none.
  let answeredDuring = 0
  const timer = (async () => {
    while (!attackOver.signal.aborted) {
      const got = await timeGets('alice', d.socket, '/api/v1/secrets', 50)
      timings.push(...got.ms)
      refusedGets += got.statuses.filter(s => s !== 200).length
      if (!attackOver.signal.aborted) answeredDuring += got.statuses.filter(s => s === 200).length
    }
  })()
  const victimsDone = Promise.all(victims.map(victim))
  const bobResult = await attack
  attackOver.abort()
  await Promise.all([victimsDone, timer])
  const rounds = await holding
  clearInterval(sampler)
  h.addText('hostile attack output', bobResult.stdout + bobResult.stderr)

  t.equal(bobResult.code, 0, `bob's attack ran to its end (${bobResult.stderr.trim().slice(0, 300)})`)
  const codes = bobResult.code === 0 ? JSON.parse(bobResult.stdout) as Record<string, number> : {}
  t.comment(`bob: ${JSON.stringify(codes)}, connection rounds ${rounds}`)
  t.ok((codes['arm NFS_ERR_LIMIT'] ?? 0) > 0, 'bob reached liveRunsPerUser and was refused with NFS_ERR_LIMIT')
  t.same(wrong, [], 'every victim request succeeded with the victim\'s own values')
  t.same(late, [], 'no victim\'s run was delayed past its deadline')
  const sorted = [...timings].sort((a, b) => a - b)
  const p99 = sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)] ?? NaN
  const maxRss = Math.max(...rss)
  const slowest = sorted[sorted.length - 1] ?? NaN
  t.comment(`hostile neighbour: alice's GET /secrets n=${timings.length} p50 ${sorted[Math.floor(sorted.length / 2)]?.toFixed(1)} ms p99 ${p99.toFixed(1)} ms slowest ${slowest.toFixed(1)} ms` +
    ` (${(slowest / baseline.max).toFixed(1)} x the slowest of the baseline); baseline, bob idle: p50 ${baseline.p50.toFixed(1)} ms p99 ${baseline.p99.toFixed(1)} ms slowest ${baseline.max.toFixed(1)} ms;` +
    ` daemon RSS ${before.rss.toFixed(0)} -> max ${maxRss.toFixed(0)} MB`)
  t.same(baseline.statuses.filter(s => s !== 200), [], 'the baseline GETs were answered 200')
  t.equal(refusedGets, 0, 'every GET /secrets of alice\'s was answered 200 while bob was at every limit')
  t.ok(answeredDuring > 0, `alice's GETs were answered during the attack, not only after it (${answeredDuring} of ${timings.length})`)
  t.ok(maxRss - before.rss < RSS_BOUND_MB, `the daemon's RSS grew by less than ${RSS_BOUND_MB} MB (${(maxRss - before.rss).toFixed(0)} MB)`)

  // Everything of the victims' settles; bob's stopped children were resumed at his end and his runs are revoked.
  await waitUntil('every victim run settled', () => readLedger(d.stateDir).filter(r => r.user !== 'bob').every(settled), 60_000, 200)
  t.same(runDirs(join(dir, 'runs')).filter(r => !r.startsWith('bob/')), [], 'no victim run dir is left')
  for (const v of victims) {
    const list = await cli(v.name, ['secrets', 'list', '--json'])
    t.same(json<Array<{ name: string }>>(list.stdout).map(s => s.name), ['OWN_TOKEN'], `${v.name}'s secret is still there`)
  }
  t.equal(d.process.exitCode, null, 'the daemon is still running')
  await d.stop()
  h.captureDaemon('hostile daemon', d)
}
