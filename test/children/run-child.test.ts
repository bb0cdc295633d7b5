// runChild, the one way the daemon starts a child: real processes, real users, real signals. What it promises:
// a deadline that holds against a child its user stopped, a kill that reaches the whole process group, bounded
// output, only fds 0-2 in the child even while the daemon holds a pty master without FD_CLOEXEC, and a spawn failure
// (EMFILE included) that rejects instead of crashing the process.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { openSync, closeSync, readFileSync } from 'node:fs'
import { spawn as ptySpawn } from '../../daemon/pty/node-pty.js'
import { runChild } from '../../daemon/children/run-child.js'
import { requireUsers } from '../helpers/requires.js'

const [bob] = requireUsers(t, ['bob'])

function gone (pid: number): boolean {
  try {
    // a zombie still has an entry; only a process that runs counts as alive
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.startsWith('Z') ?? true
  } catch {
    return true
  }
}

t.test('exit status, output and input', async t => {
  const r = await runChild('/bin/sh', ['-c', 'cat; echo err >&2; exit 3'], { deadlineMs: 10_000, input: 'in\n' })
  t.match(r, { code: 3, signal: null, stdout: 'in\n', stderr: 'err\n', timedOut: false, truncated: false })
  process.env.NFS_TEST_DAEMON_ONLY = 'daemon-env-canary'
  t.teardown(() => { delete process.env.NFS_TEST_DAEMON_ONLY })
  const env = (await runChild('/usr/bin/env', [], { deadlineMs: 10_000 })).stdout
  t.match(env, /^PATH=\/usr\/sbin:\/usr\/bin:\/sbin:\/bin$/m)
  t.match(env, /^LC_ALL=C$/m)
  // (tap's own instrumentation adds its variables to every spawn in a test process; the daemon has none)
  t.notMatch(env, /daemon-env-canary/, 'nothing of the daemon\'s environment')
  const killed = await runChild('/bin/sh', ['-c', 'kill -TERM $$'], { deadlineMs: 10_000 })
  t.match(killed, { code: null, signal: 'SIGTERM', timedOut: false })
})

t.test('a child its own user stopped is killed at the deadline, with everything it started', async t => {
  // As bob, who may signal his own processes: the child stops itself after starting a grandchild.
  const r = await runChild('/bin/sh', ['-c', 'sleep 300 & echo $!; echo $$; kill -STOP $$'], {
    uid: bob!.uid, gid: bob!.gid, deadlineMs: 300
  })
  t.equal(r.timedOut, true)
  t.equal(r.signal, 'SIGKILL')
  const [grandchild, child] = r.stdout.trim().split('\n').map(Number)
  // SIGKILL is delivered to stopped processes; reaping may take a moment.
  for (let i = 0; i < 100 && !(gone(child!) && gone(grandchild!)); i++) await new Promise(resolve => setTimeout(resolve, 20))
  t.ok(gone(child!), 'the stopped child is gone')
  t.ok(gone(grandchild!), 'its grandchild (same process group) is gone')
})

t.test('a grandchild that keeps the pipes open does not hold the result past the deadline', async t => {
  // setsid moves the grandchild out of the group, so only the deadline settles the result.
  const r = await runChild('/bin/sh', ['-c', 'setsid sleep 300 & echo $!; exit 0'], { deadlineMs: 300 })
  t.equal(r.timedOut, true)
  const pid = Number(r.stdout.trim())
  t.teardown(() => { try { process.kill(pid, 'SIGKILL') } catch {} })
})

t.test('output is bounded and the child is drained, never blocked', async t => {
  const r = await runChild('/bin/sh', ['-c', 'head -c 5000000 /dev/zero; head -c 5000000 /dev/zero >&2; exit 0'], { deadlineMs: 20_000, maxOutputBytes: 1000 })
  t.match(r, { code: 0, timedOut: false, truncated: true })
  t.equal(r.stdout.length, 1000)
  t.equal(r.stderr.length, 1000)
})

t.test('the child has only fds 0, 1 and 2, even while a pty master without FD_CLOEXEC is open here', async t => {
  const term = ptySpawn('/bin/sleep', ['30'], {})
  t.teardown(() => term.kill('SIGKILL'))
  const plain = openSync('/dev/null', 'r')
  t.teardown(() => closeSync(plain))
  // The shell lists its own fds through another process (ls), so the listing opens none of its own in the shell.
  const r = await runChild('/bin/sh', ['-c', 'ls /proc/$$/fd'], { deadlineMs: 10_000, uid: bob!.uid, gid: bob!.gid })
  t.equal(r.code, 0)
  t.same(r.stdout.trim().split('\n').map(Number).sort((a, b) => a - b), [0, 1, 2])
})

t.test('a spawn that fails rejects with its errno code; EMFILE does not crash the process', async t => {
  await t.rejects(runChild('/no/such/binary', [], { deadlineMs: 1000 }), { code: 'ENOENT' })
  // Lower this process's fd limit to what it uses now plus a few, fill those, then spawn.
  const open = Number(execFileSync('sh', ['-c', `ls /proc/${process.pid}/fd | wc -l`], { encoding: 'utf8' }))
  const limit = open + 8
  const before = execFileSync('prlimit', ['--pid', String(process.pid), '--nofile', '--raw', '--noheadings', '--output=SOFT,HARD'], { encoding: 'utf8' }).trim().split(/\s+/)
  execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${limit}:${before[1]}`])
  const held: number[] = []
  t.teardown(() => {
    for (const fd of held) closeSync(fd)
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${before[0]}:${before[1]}`])
  })
  try {
    for (;;) held.push(openSync('/dev/null', 'r'))
  } catch (err) {
    t.equal((err as NodeJS.ErrnoException).code, 'EMFILE', 'the fd table is full')
  }
  await t.rejects(runChild('/bin/true', [], { deadlineMs: 1000 }), { code: /^(EMFILE|ENFILE)$/ })
  for (const fd of held.splice(0)) closeSync(fd)
  t.match(await runChild('/bin/true', [], { deadlineMs: 10_000 }), { code: 0 }, 'works again once fds are free')
})
