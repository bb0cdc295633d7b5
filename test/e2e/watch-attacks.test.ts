// The watcher attacked by a real local user (bob) against a root daemon in system mode (issue 13):
// - a history bomb: bob rewrites his own history every 0.3 s with a fresh runName and a 4 MB command column; the
//   daemon's RSS (from /proc/PID/status) stays under a generous ceiling, and it still sees a real start afterwards;
// - the `watch add` race: bob flips a symlink in his own path between his dir and alice's 0700 dir while asking to
//   watch through it, a hundred and more times; no watch of alice's dir is ever accepted and no run of alice's is made;
// - the per-user limits through the CLI: roots, poll interval, watched dirs (which `watch list` and `status` show).
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { chownSync, chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { call, startTestDaemon, tempDir } from '../helpers/daemon.js'
import { errorCode, json, runCli, runNode } from '../helpers/cli.js'
import { ensureUsers } from '../helpers/users.js'
import { waitFor } from '../helpers/watch.js'

const [alice, bob] = ensureUsers(['alice', 'bob'])
// setpriv execs (runuser forks and waits): the pid spawned is bob's process itself, so killing it ends it.
const AS_BOB = ['--reuid', 'bob', '--regid', 'bob', '--init-groups', '--']

function rssMb (pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1] ?? NaN) / 1024
}

function mkdirAs (path: string, who: { uid: number, gid: number }, mode = 0o755): void {
  mkdirSync(path, { recursive: true })
  chownSync(path, who.uid, who.gid)
  chmodSync(path, mode)
}

function historyLine (runName: string, command = 'nextflow run main.nf'): string {
  const d = new Date()
  const p = (n: number): string => String(n).padStart(2, '0')
  const ts = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`
  return `${ts}\t-\t${runName}\t-\tabc1234567\t${crypto.randomUUID()}\t${command}\n`
}

async function daemonFor (t: Parameters<typeof tempDir>[0], dir: string, limits: Record<string, number> = {}): ReturnType<typeof startTestDaemon> {
  const keyFile = join(dir, 'master.key')
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  // TZ: history lines carry local time; the daemon reads them in the same zone as this test writes them.
  return await startTestDaemon(t, { mode: 'system', dir, config: { keyFile, runs: { defaultTargets: ['memory'] }, limits }, env: { TZ: process.env.TZ ?? 'UTC' } })
}

type Runs = Array<{ user: string, runName: string | null, launchDir: string, mode: string }>
// Runs are listed with ?all=true: these starts have no Nextflow behind them (no log, no session lock), so the daemon
// ends each auto-run as 'process gone' once two of its checks a liveness interval apart find it dead (before e46562c
// that was sometimes within 100 ms of making it, and a list of live runs missed it in CI). The tests ask whether a
// run was made, so they count ended ones too; and no run of alice's, or of a bomb line, may exist even ended.

t.test('a history bomb of bob\'s leaves the daemon\'s RSS bounded', async t => {
  const dir = tempDir(t, 'nfs-e2e-bomb-')
  const d = await daemonFor(t, dir)
  const w = join(dir, 'bob-w')
  const proj = join(w, 'p')
  mkdirAs(w, bob!)
  mkdirAs(proj, bob!)
  mkdirAs(join(proj, '.nextflow'), bob!)
  const history = join(proj, '.nextflow', 'history')
  writeFileSync(history, '')
  chownSync(history, bob!.uid, bob!.gid)
  const cli = (args: string[], input?: string): ReturnType<typeof runCli> => runCli(['--socket', d.socket, ...args], { user: 'bob', ...(input !== undefined ? { input } : {}) })
  t.equal((await cli(['secrets', 'add', 'BOB_TOKEN'], 'bob-value\n')).code, 0)
  const added = await cli(['--json', 'watch', 'add', w, '--depth', '2', '--target', 'memory'])
  t.equal(added.code, 0, added.stderr)
  await waitFor('the walk', async () => json<Array<{ root: string, launchDirs: number, walking: boolean }>>((await cli(['--json', 'watch', 'list'])).stdout).some(x => x.launchDirs === 1 && !x.walking), 15_000, 200)
  const before = rssMb(d.process.pid!)

  const bomb = join(dir, 'bomb.py')
  writeFileSync(bomb, String.raw`
import datetime, sys, time, uuid
path, n = sys.argv[1], int(sys.argv[2])
huge = 'x' * (4 * 1024 * 1024)
for i in range(n):
    ts = datetime.datetime.now().strftime('%Y-%m-%d %H:%M:%S')
    with open(path, 'w') as f:
        f.write(f"{ts}\t-\tbomb_{i}\t-\tabc1234567\t{uuid.uuid4()}\t{huge}\n")
    time.sleep(0.3)
`, { mode: 0o644 })
  const { spawnSync } = await import('node:child_process')
  const r = spawnSync('runuser', ['-u', 'bob', '--', '/usr/bin/python3', bomb, history, '40'], { encoding: 'utf8' })
  t.equal(r.status, 0, r.stderr)
  // Before the fix each rewrite kept ~4 MB for good: +160 MB of heap alone over 40 rewrites.
  const after = rssMb(d.process.pid!)
  t.ok(after - before < 80, `RSS ${before.toFixed(0)} MB -> ${after.toFixed(0)} MB over 40 rewrites of 4 MB`)
  // The watcher still works: a real start after the bomb becomes bob's auto-run.
  writeFileSync(history, historyLine('after_bomb'))
  await waitFor('the real start is seen', async () => {
    const runs = (await call(d.socket, 'GET', '/api/v1/runs?all=true')).body as Runs
    return runs.some(x => x.user === 'bob' && x.runName === 'after_bomb')
  }, 20_000, 200)
  t.ok(rssMb(d.process.pid!) - before < 80, 'and after the real start')
  const runs = (await call(d.socket, 'GET', '/api/v1/runs?all=true')).body as Runs
  t.notOk(runs.some(x => x.runName?.startsWith('bomb_') === true), 'a line longer than any real one makes no run')
})

t.test('watch add raced with a symlink swap never watches alice\'s private dir', async t => {
  const dir = tempDir(t, 'nfs-e2e-race-')
  const d = await daemonFor(t, dir)
  const aliceHome = join(dir, 'alice-home')
  mkdirAs(aliceHome, alice!, 0o700)
  mkdirAs(join(aliceHome, 'private'), alice!, 0o700)
  mkdirAs(join(aliceHome, 'private', '.nextflow'), alice!, 0o700)
  const aliceHistory = join(aliceHome, 'private', '.nextflow', 'history')
  writeFileSync(aliceHistory, '')
  chownSync(aliceHistory, alice!.uid, alice!.gid)
  const race = join(dir, 'bob-race')
  mkdirAs(race, bob!)
  mkdirAs(join(race, 'real'), bob!)
  mkdirAs(join(race, 'real', 'private'), bob!)
  mkdirAs(join(race, 'real', 'private', '.nextflow'), bob!)
  writeFileSync(join(race, 'real', 'private', '.nextflow', 'history'), '')
  chownSync(join(race, 'real', 'private', '.nextflow', 'history'), bob!.uid, bob!.gid)
  t.equal((await runCli(['--socket', d.socket, 'secrets', 'add', 'ALICE_TOKEN'], { user: 'alice', input: 'ALICE_PERSONAL_CANARY\n' })).code, 0)

  // bob flips race/lnk between his own dir and alice's home (symlink + rename, as fast as it goes) ...
  const swap = join(dir, 'swap.py')
  writeFileSync(swap, String.raw`
import os, sys, time
race, other, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
lnk, tmp = os.path.join(race, 'lnk'), os.path.join(race, 'lnk.tmp')
end = time.time() + secs
i = 0
while time.time() < end:
    try: os.unlink(tmp)
    except FileNotFoundError: pass
    os.symlink(os.path.join(race, 'real') if i % 2 == 0 else other, tmp)
    os.rename(tmp, lnk)
    i += 1
`, { mode: 0o644 })
  // ... while asking to watch race/lnk/private, again and again; a watch of his own dir is removed to try again.
  const adder = join(dir, 'adder.mjs')
  writeFileSync(adder, String.raw`
import { request } from 'node:http'
const [socket, root, n] = [process.argv[2], process.argv[3], Number(process.argv[4])]
const ask = (method, path, body) => new Promise((resolve, reject) => {
  const payload = body === undefined ? undefined : JSON.stringify(body)
  const req = request({ socketPath: socket, method, path, headers: payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {} }, res => {
    let text = ''
    res.on('data', c => { text += c })
    res.on('end', () => resolve({ status: res.statusCode, body: text ? JSON.parse(text) : null }))
  })
  req.on('error', reject)
  req.end(payload)
})
const out = { tries: 0, accepted: [], codes: {} }
for (let i = 0; i < n; i++) {
  const r = await ask('POST', '/api/v1/watches', { root, depth: 0, targets: ['memory'] })
  out.tries++
  if (r.status === 201) {
    out.accepted.push(r.body.root)
    // his own dir: give it back and try again; anyone else's: won, keep it
    if (!r.body.root.startsWith(process.argv[5])) break
    await ask('DELETE', '/api/v1/watches?root=' + encodeURIComponent(r.body.root))
  } else {
    out.codes[r.body.code] = (out.codes[r.body.code] ?? 0) + 1
  }
}
console.log(JSON.stringify(out))
`, { mode: 0o644 })
  const { spawn } = await import('node:child_process')
  const swapper = spawn('setpriv', [...AS_BOB, '/usr/bin/python3', swap, race, aliceHome, '120'], { stdio: 'ignore' })
  const swapped = new Promise(resolve => swapper.once('exit', resolve))
  const stopSwap = async (): Promise<void> => { if (swapper.exitCode === null && swapper.signalCode === null) swapper.kill('SIGTERM'); await swapped }
  t.teardown(stopSwap)
  await waitFor('the swap loop runs', () => { try { return statSync(join(race, 'lnk'), { throwIfNoEntry: false }) !== undefined } catch { return false } }, 10_000)
  const res = await runNode(adder, [d.socket, join(race, 'lnk', 'private'), '150', race], { user: 'bob', timeoutMs: 120_000 })
  await stopSwap()
  t.equal(res.code, 0, res.stderr)
  const out = JSON.parse(res.stdout) as { tries: number, accepted: string[], codes: Record<string, number> }
  t.ok(Object.keys(out.codes).every(c => ['NFS_ERR_FORBIDDEN', 'NFS_ERR_UNSAFE_PATH', 'NFS_ERR_INVALID_PATH'].includes(c)), JSON.stringify(out.codes))
  t.notOk(out.accepted.some(root => !root.startsWith(race)), `never alice's dir (accepted: ${[...new Set(out.accepted)].join(', ')})`)
  for (const root of new Set(out.accepted)) t.equal(statSync(root).uid, bob!.uid, `${root} is bob's`)

  // Whatever bob holds now, alice's start in her private dir makes no run, while his own start does.
  // (his own dir is watched for the control start below, whatever he won; already there: WATCH_EXISTS, fine)
  await runCli(['--socket', d.socket, 'watch', 'add', join(race, 'real', 'private'), '--depth', '0', '--target', 'memory'], { user: 'bob' })
  t.equal((await runCli(['--socket', d.socket, 'secrets', 'add', 'BOB_TOKEN'], { user: 'bob', input: 'bob-value\n' })).code, 0)
  writeFileSync(aliceHistory, historyLine('alice_private'))
  writeFileSync(join(race, 'real', 'private', '.nextflow', 'history'), historyLine('bob_control'))
  await waitFor('bob\'s own start', async () => ((await call(d.socket, 'GET', '/api/v1/runs?all=true')).body as Runs).some(x => x.runName === 'bob_control'), 20_000, 200)
  const runs = (await call(d.socket, 'GET', '/api/v1/runs?all=true')).body as Runs
  t.notOk(runs.some(x => x.user === 'alice'), 'no run of alice\'s was made')
  t.notOk(d.log().includes('ALICE_PERSONAL_CANARY'))
})

t.test('per-user watch limits through the CLI as bob: roots, poll interval, watched dirs', async t => {
  const dir = tempDir(t, 'nfs-e2e-wlimits-')
  const d = await daemonFor(t, dir, { watchRootsPerUser: 2, watchedDirsPerUser: 12, minPollIntervalMs: 1000 })
  const cli = (args: string[]): ReturnType<typeof runCli> => runCli(['--socket', d.socket, ...args], { user: 'bob' })
  const roots = ['a', 'b', 'c'].map(n => join(dir, `bob-${n}`))
  for (const r of roots) mkdirAs(r, bob!)
  // 3 x 10 subdirs under the first root: more than the 12 dirs bob may have watched
  for (let i = 0; i < 10; i++) for (const s of ['x', 'y', 'z']) mkdirAs(join(roots[0]!, `d${i}`, s), bob!)
  for (let i = 0; i < 10; i++) chownSync(join(roots[0]!, `d${i}`), bob!.uid, bob!.gid)

  const fast = await cli(['watch', 'add', roots[1]!, '--poll', '--interval', '200'])
  t.equal(fast.code, 1)
  t.equal(errorCode(fast.stderr), 'NFS_ERR_LIMIT', 'polling faster than minPollIntervalMs')
  t.match(fast.stderr, /minPollIntervalMs/)
  t.equal((await cli(['watch', 'add', roots[0]!, '--depth', '3'])).code, 0)
  t.equal((await cli(['watch', 'add', roots[1]!])).code, 0)
  const third = await cli(['watch', 'add', roots[2]!])
  t.equal(third.code, 1)
  t.equal(errorCode(third.stderr), 'NFS_ERR_LIMIT')
  t.match(third.stderr, /watchRootsPerUser/)
  await waitFor('walks done', async () => json<Array<{ walking: boolean }>>((await cli(['--json', 'watch', 'list'])).stdout).every(x => !x.walking), 15_000, 200)
  const list = json<Array<{ root: string, limited?: string | null }>>((await cli(['--json', 'watch', 'list'])).stdout)
  t.match(list.find(x => x.root === roots[0])?.limited, /watchedDirsPerUser/, 'watch list says the walk stopped at the limit')
  const status = json<{ watches: { limited: string[] } }>((await cli(['--json', 'status'])).stdout)
  t.ok(status.watches.limited.some(x => x.startsWith(roots[0]!)), 'status says so too')
  const text = await cli(['watch', 'list'])
  t.match(text.stdout, /watchedDirsPerUser/)
  // an admin is not limited
  const asRoot = await runCli(['--socket', d.socket, 'watch', 'add', roots[2]!, '--poll', '--interval', '200'])
  t.equal(asRoot.code, 0, asRoot.stderr)
})
