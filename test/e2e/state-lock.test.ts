// One daemon per state dir (SPEC 11): two user daemons on one state dir with different sockets (XDG_RUNTIME_DIR
// differs between two logins, or two login nodes share the home) would each rewrite store.json and runs.json from
// their own memory and lose the other's secrets. The second must exit 75 (NFS_ERR_STATE_IN_USE) naming the first's
// pid, before it reads, reconciles or changes anything.
import t from 'tap'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { socketGet, startTestDaemon, tempDir } from '../helpers/daemon.js'
import { errorCode, runCli, runDaemon } from '../helpers/cli.js'

t.setTimeout(300_000)

// Every file of the state dir with its bytes, inode and mtime: what a second daemon must leave exactly as it was.
function stateSnapshot (dir: string): Record<string, { bytes: string, ino: number, mtimeMs: number }> {
  const out: Record<string, { bytes: string, ino: number, mtimeMs: number }> = {}
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name)
    const st = statSync(p)
    if (st.isFile()) out[name] = { bytes: readFileSync(p).toString('base64'), ino: st.ino, mtimeMs: st.mtimeMs }
  }
  return out
}

t.test('a second daemon on the same state dir (another socket) exits 75 before touching anything', async t => {
  const first = await startTestDaemon(t, { mode: 'user' })
  const cli = (args: string[], input?: string): ReturnType<typeof runCli> =>
    runCli(['--socket', first.socket, ...args], { ...(input !== undefined ? { input } : {}), cwd: first.dir })
  t.equal((await cli(['secrets', 'add', 'ONE'], 'first-value')).code, 0)
  const armed = await cli(['arm'])
  t.equal(armed.code, 0, armed.stderr)
  const runsDir = join(first.dir, 'runs')
  const runDirs = (): string[] => readdirSync(runsDir, { recursive: true }).map(String).sort()
  // Frozen, the first daemon writes nothing of its own meanwhile; its lock is the kernel's and stays held.
  first.process.kill('SIGSTOP')
  t.teardown(() => { first.process.kill('SIGCONT') })
  const before = stateSnapshot(first.stateDir)
  const runsBefore = runDirs()
  t.ok(before['store.json'] !== undefined && before['runs.journal'] !== undefined, 'the first daemon wrote its store and ledger')

  // Its own socket, config and runs root; only the state dir is the first one's.
  const second = await startTestDaemon(t, { mode: 'user', args: ['--state-dir', first.stateDir], wait: false })
  // It either exits or (the old behaviour) ends up serving on its own socket: whichever comes first decides.
  const exited = new Promise<number | null>(resolve => second.process.once('exit', resolve))
  let serving = false
  while (second.process.exitCode === null && !serving) {
    serving = (await socketGet(second.socket, '/api/v1/health', 1000).catch(() => null))?.status === 200
    if (!serving) await Promise.race([exited, new Promise(resolve => setTimeout(resolve, 100))])
  }
  t.notOk(serving, 'the second daemon never served')
  const code = serving ? await second.stop() : await exited
  t.equal(code, 75, 'exit 75')
  const stderr = second.log().trim().split('\n').filter(l => l.startsWith('nf-secretsd:')).pop() ?? ''
  t.equal(errorCode(stderr), 'NFS_ERR_STATE_IN_USE', stderr)
  t.match(stderr, String(first.process.pid), 'names the holder\'s pid')
  t.match(stderr, hostname(), 'and its host')
  t.same(stateSnapshot(first.stateDir), before, 'store, ledger, audit log and key: bytes, inodes and mtimes unchanged')
  t.same(runDirs(), runsBefore, 'the first daemon\'s run dirs are untouched')
  t.same(second.logs().filter(l => l.level !== -1), [], 'it logged nothing: it never got as far as its logger')

  // The first daemon still serves, and after it stops the state dir is free again.
  first.process.kill('SIGCONT')
  t.equal((await cli(['secrets', 'add', 'TWO'], 'second-value')).code, 0)
  t.equal(await first.stop(), 0)
  const again = await startTestDaemon(t, { mode: 'user', dir: first.dir, build: false })
  const list = await runCli(['--socket', again.socket, 'secrets', 'list', '--json'], { cwd: first.dir })
  t.same((JSON.parse(list.stdout) as Array<{ name: string }>).map(s => s.name).sort(), ['ONE', 'TWO'], 'nothing lost')
})

t.test('rotate-key refuses while a daemon holds the state dir, whatever socket it listens on', async t => {
  const first = await startTestDaemon(t, { mode: 'user' })
  const dir = tempDir(t)
  const before = stateSnapshot(first.stateDir)
  const r = await runDaemon(['rotate-key', '--mode', 'user', '--state-dir', first.stateDir, '--socket', join(dir, 'other.sock')])
  t.equal(r.code, 75, r.stderr)
  t.equal(errorCode(r.stderr), 'NFS_ERR_STATE_IN_USE')
  t.same(stateSnapshot(first.stateDir), before)
})
