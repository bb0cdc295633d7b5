// Launched runs against a real nf-secretsd (user mode) over its real Unix socket: a script that prints, reads from
// its terminal and prints `stty size`, driven through the attach WebSocket and through the real CLI under a pty;
// several clients, detach and replay; a canary secret that must reach the run's store and nothing else.
import t from 'tap'
import { spawn as ptySpawn } from '../../daemon/pty/node-pty.js'
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import WebSocket from 'ws'
import { CLI_BIN, startTestDaemon, tempDir } from '../helpers/daemon.js'
import { runCli } from '../helpers/cli.js'
import { PATH, attachRun, eventually, launch, run, script } from '../helpers/attach.js'
import { ME } from '../helpers/users.js'

// Each subtest starts real daemons (and restarts them): more than tap's default file timeout on a loaded machine.
t.setTimeout(300_000)

t.test('a launched script: type a line, resize, detach, re-attach with replay, several clients; completed and revoked', async t => {
  const daemon = await startTestDaemon(t, { mode: 'user', env: { DAEMON_ONLY_MARKER: 'daemon-env-7' } })
  const dir = tempDir(t)
  const s = script(dir, 'talk.sh', [
    'echo "start caller=$CALLER_MARK daemon=${DAEMON_ONLY_MARKER:-none} store=$(test -f "$NXF_SECRETS_FILE" && echo yes)"',
    "printf 'name? '",
    'read name',
    'echo "got:$name"',
    "printf 'ready? '",
    'read _',
    'echo "size:$(stty size)"'
  ].join('\n') + '\n')
  const runId = await launch(daemon, dir, ['sh', s], { CALLER_MARK: 'caller-env-3' })
  const first = await attachRun(t, daemon.socket, runId)
  await first.waitFor(/name\? /)
  t.match(first.output(), /start caller=caller-env-3 daemon=none store=yes/, "the caller's env plus the run's, nothing of the daemon's")
  first.type('alice\r')
  await first.waitFor(/got:alice/)
  first.resize(101, 31)
  const second = await attachRun(t, daemon.socket, runId)
  await first.detach()
  t.equal((await run(daemon, runId)).state, 'running', 'detaching leaves the run going')

  const third = await attachRun(t, daemon.socket, runId)
  await third.waitFor(/got:alice/)
  t.match(third.output(), /start caller=caller-env-3[\s\S]*name\? alice[\s\S]*got:alice/, 'the replay holds the output from before, echo included')
  third.type('\r')
  const [ended2, ended3] = await Promise.all([second.closed, third.closed])
  for (const [c, ended] of [[second, ended2], [third, ended3]] as const) {
    t.match(c.output(), /size:31 101/, 'the resize reached the terminal, every client sees the output')
    t.same(ended.exit, { type: 'exit', state: 'completed', exitCode: 0, signal: null })
    t.equal(ended.code, 1000)
  }
  const view = await eventually(async () => { const v = await run(daemon, runId); return v.targets.hpc?.state === 'revoked' ? v : undefined }, 'revoked')
  t.equal(view.state, 'completed')
  t.notOk(existsSync(join(daemon.dir, 'runs', ME, runId)), 'the run dir is gone')
  const log = join(daemon.stateDir, 'launch', ME, `${runId}.log`)
  t.equal(statSync(log).mode & 0o777, 0o600, 'the output log is 0600')
  t.match(readFileSync(log, 'utf8'), /got:alice[\s\S]*size:31 101/)
  t.same(readdirSync(join(daemon.stateDir, 'launch', ME)).filter(f => !f.endsWith('.log')), [], 'no env or status file left')

  const late = await attachRun(t, daemon.socket, runId)
  const lateEnd = await late.closed
  t.match(late.output(), /size:31 101/, 'attaching after the end replays and ends at once')
  t.equal(lateEnd.exit?.state, 'completed')

  const guessed = await attachRun(t, daemon.socket, 'AAAAAAAAAAAAAA').catch((err: { code?: string }) => err)
  t.equal((guessed as { code?: string }).code, 'NFS_ERR_RUN_NOT_FOUND', 'a guessed id is not found')
})

t.test('the real CLI under a pty: launch prints the runId, Ctrl-] detaches, attach replays, forwards keys and SIGWINCH, exits with the status', async t => {
  const daemon = await startTestDaemon(t, { mode: 'user' })
  const dir = tempDir(t)
  const s = script(dir, 'cli.sh', [
    'echo "size:$(stty size)"',
    "printf 'line? '",
    'read l',
    'echo "typed:$l"',
    'while read l2; do',
    '  [ "$l2" = q ] && exit 3',
    '  echo "now:$(stty size)"',
    'done'
  ].join('\n') + '\n')
  const env = { PATH, HOME: '/root', NF_SECRETS_SOCKET: daemon.socket, TERM: 'xterm' }
  const term = (args: string[], cols: number, rows: number): { out: () => string, write: (d: string) => void, resize: (c: number, r: number) => void, exit: Promise<number> } => {
    const p = ptySpawn(process.execPath, [CLI_BIN, ...args], { cwd: dir, env, cols, rows })
    let out = ''
    p.onData(d => { out += d })
    t.teardown(() => { try { p.kill('SIGKILL') } catch {} })
    return { out: () => out, write: d => p.write(d), resize: (c, r) => p.resize(c, r), exit: new Promise(resolve => p.onExit(e => resolve(e.exitCode))) }
  }
  const waitOut = async (x: { out: () => string }, re: RegExp): Promise<void> => { await eventually(() => re.test(x.out()) ? true : undefined, `${re}: ${JSON.stringify(x.out().slice(-300))}`, 20_000) }

  const one = term(['launch', '--', 'sh', s], 90, 20)
  await waitOut(one, /line\? /)
  t.match(one.out(), /size:20 90/, 'the launching terminal size is the run terminal size')
  const runId = /launched run ([0-9A-Za-z]{14})/.exec(one.out())?.[1]
  t.ok(runId, 'launch prints the runId')
  one.write('hello\r')
  await waitOut(one, /typed:hello/)
  one.write('\x1d')
  t.equal(await one.exit, 0, 'Ctrl-] detaches with status 0')
  t.match(one.out(), /detached from run/)
  t.equal((await run(daemon, runId!)).state, 'running')

  const two = term(['attach', runId!], 70, 15)
  await waitOut(two, /typed:hello/)
  two.write('\r')
  await waitOut(two, /now:15 70/)
  two.resize(77, 22)
  // SIGWINCH reaches the CLI asynchronously: ask until the new size shows.
  await eventually(async () => { two.write('\r'); await new Promise(resolve => setTimeout(resolve, 200)); return /now:22 77/.test(two.out()) ? true : undefined }, 'the new window size')
  two.write('q\r')
  t.equal(await two.exit, 3, "attach exits with the command's status")
  const view = await eventually(async () => { const v = await run(daemon, runId!); return v.targets.hpc?.state === 'revoked' ? v : undefined }, 'revoked')
  t.match(view, { state: 'failed', exitCode: 3 })

  const detached = await runCli(['launch', '--detach', '--', 'true'], { env: { NF_SECRETS_SOCKET: daemon.socket }, cwd: dir })
  t.equal(detached.code, 0, detached.stderr)
  t.match(detached.stdout, /^[0-9A-Za-z]{14}\n$/, '--detach prints the runId alone on stdout')
  const missing = await runCli(['launch', '--detach', '--', 'no-such-command-xyz'], { env: { NF_SECRETS_SOCKET: daemon.socket }, cwd: dir })
  t.equal(missing.code, 1)
  t.match(missing.stderr, /\(NFS_ERR_LAUNCH_FAILED\)/)
  const notFound = await runCli(['attach', 'AAAAAAAAAAAAAA'], { env: { NF_SECRETS_SOCKET: daemon.socket } })
  t.equal(notFound.code, 3)
  t.match(notFound.stderr, /\(NFS_ERR_RUN_NOT_FOUND\)/)
})

t.test('a canary secret reaches the run store, and not the daemon log, an event, argv or the output log', async t => {
  const daemon = await startTestDaemon(t, { mode: 'user' })
  const canary = 'canary-launch-5e1f0c'
  const add = await runCli(['secrets', 'add', 'CANARY_TOKEN'], { env: { NF_SECRETS_SOCKET: daemon.socket }, input: canary })
  t.equal(add.code, 0, add.stderr)
  const events: string[] = []
  const ws = new WebSocket(`ws+unix://${daemon.socket}:/api/v1/events`)
  ws.on('message', d => events.push(d.toString()))
  await new Promise(resolve => ws.once('open', resolve))
  t.teardown(() => ws.terminate())
  const dir = tempDir(t)
  const runId = await launch(daemon, dir, ['sh', '-c', 'echo waiting; read _; echo done'])
  const a = await attachRun(t, daemon.socket, runId)
  await a.waitFor(/waiting/)
  const store = join(daemon.dir, 'runs', ME, runId, 'store.json')
  t.match(readFileSync(store, 'utf8'), canary, 'the canary was provisioned to the run')
  const argv = readdirSync('/proc').filter(p => /^\d+$/.test(p)).map(p => { try { return readFileSync(`/proc/${p}/cmdline`, 'utf8') } catch { return '' } }).join('\n')
  t.notMatch(argv, canary, 'in no process argv')
  a.type('\r')
  t.equal((await a.closed).exit?.state, 'completed')
  await eventually(async () => (await run(daemon, runId)).targets.hpc?.state === 'revoked' ? true : undefined, 'revoked')
  await eventually(() => events.some(e => e.includes('run.revoked')) ? true : undefined, 'the revoked event')
  t.ok(events.some(e => e.includes(runId)), 'events about the run were seen')
  t.notMatch(events.join('\n'), canary, 'in no event')
  t.notMatch(daemon.log(), canary, 'not in the daemon log')
  t.notMatch(readFileSync(join(daemon.stateDir, 'launch', ME, `${runId}.log`), 'utf8'), canary, 'not in the output log')
})
