// `nf-secrets rerun TASK_DIR [-- CMD]` (SPEC 11) end to end, in system mode with real users: a task wrapper in the
// shape Nextflow writes it (test/helpers/task-wrapper.ts) run by real bash reads its secret through the sourced file;
// exactly the names it greps are placed at exactly the path it names, 0600 and the caller's; the file is gone after the
// command ends (success, failure, a killed CLI, a daemon restart). Attacks as bob against alice: her task dir, a
// symlink or a file already at his path, a path in her tree or her old run dir, a task dir swapped for a symlink.
// A canary value never reaches the daemon's log, ledger, audit log or any process's argv.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { requireUsers } from '../helpers/requires.js'
import { call, startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js'
import { errorCode, json, runCli, spawnCli, type RunOptions, type RunResult } from '../helpers/cli.js'
import { rawRequest } from '../helpers/raw-request.js'
import { writeTask } from '../helpers/task-wrapper.js'
import { waitFor } from '../helpers/wait.js'

t.setTimeout(600_000)
const [alice, bob] = requireUsers(t, ['alice', 'bob'])
const dir = tempDir(t)
const keyFile = join(dir, 'master.key')
writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
const config = { keyFile, hpc: { runsRoot: join(dir, 'runs') }, runs: { livenessIntervalMs: 200, revokeRetryInitialMs: 200, revokeRetryMaxMs: 1000 } }
let d: TestDaemon = await startTestDaemon(t, { mode: 'system', dir, config })

const CANARY = `canary-rerun-${randomBytes(6).toString('hex')}`
const HASH = '3f0c2a5e9b1d4c7a8e6f0b2d4c6a8e0f'
const sha = (s: string): string => createHash('sha256').update(s).digest('hex')

/** A dir of `u`'s own (mkdir -p as root, then chown each level made under `base`). */
function own (u: { uid: number, gid: number }, path: string, mode = 0o755): string {
  mkdirSync(path, { recursive: true })
  chmodSync(path, mode)
  chownSync(path, u.uid, u.gid)
  return path
}
const aliceHome = own(alice!, join(dir, 'alice'))
const bobHome = own(bob!, join(dir, 'bob'))
const aliceStoreDir = own(alice!, join(aliceHome, '.nextflow'), 0o700) && own(alice!, join(aliceHome, '.nextflow', 'secrets'), 0o700)
const bobStoreDir = own(bob!, join(bobHome, '.nextflow'), 0o700) && own(bob!, join(bobHome, '.nextflow', 'secrets'), 0o700)
own(alice!, join(aliceHome, 'work'))
own(bob!, join(bobHome, 'work'))

function as (user: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return runCli(args, { user, cwd: user === 'alice' ? aliceHome : bobHome, ...opts, env: { NF_SECRETS_SOCKET: d.socket, ...opts.env } })
}
/** A task of `u` reading TOKEN and DB_PASS from `secretsFile`, writing the hash of TOKEN to .command.out. */
function task (u: { uid: number, gid: number }, path: string, secretsFile: string, mode = 0o755): string {
  return writeTask(path, { secretsFile, names: ['TOKEN', 'DB_PASS'], script: 'printf %s "$TOKEN" | sha256sum | cut -d" " -f1\ntest -n "$DB_PASS"', owner: u, mode })
}
async function runOf (secretsFile: string): Promise<{ runId: string, pid: number, state: string, targets: { hpc: { state: string } } } | undefined> {
  const all = (await call(d.socket, 'GET', '/api/v1/runs?all=true')).body as Array<{ runId: string, pid: number, state: string, secretsFile?: string, targets: { hpc: { state: string } } }>
  return all.filter(r => r.secretsFile === secretsFile).pop()
}

t.before(async () => {
  for (const [user, name, value] of [['alice', 'TOKEN', CANARY], ['alice', 'DB_PASS', 'alice-db'], ['alice', 'UNUSED', 'not-for-this-task'], ['bob', 'TOKEN', 'bob-token'], ['bob', 'DB_PASS', 'bob-db']] as const) {
    const r = await as(user, ['secrets', 'add', name], { input: value })
    if (r.code !== 0) throw new Error(`secrets add ${name} as ${user}: ${r.stderr}`)
  }
})

t.test('a task of Nextflow\'s own store: the names it sources, at its path, 0600 and alice\'s, gone after', async t => {
  const file = join(aliceStoreDir, `.nf-${HASH}.secrets`)
  const taskDir = task(alice!, join(aliceHome, 'work', 'ab', 'cdef01'), file)
  // While the command runs: what the file is, and no process's argv holds the value.
  const probe = `stat -c %a:%U ${file} > .seen-stat; grep -c '^export ' ${file} > .seen-count; bash .command.run; while [ ! -e .go ]; do sleep 0.05; done`
  const cli = spawnCli(t, ['rerun', taskDir, '--', 'bash', '-c', probe], { user: 'alice', cwd: aliceHome, env: { NF_SECRETS_SOCKET: d.socket } })
  await waitFor('the task to run', () => existsSync(join(taskDir, '.exitcode')), 30_000, 50)
  const argvs = readdirSync('/proc').filter(p => /^\d+$/.test(p)).map(p => { try { return readFileSync(`/proc/${p}/cmdline`, 'utf8') } catch { return '' } })
  t.notOk(argvs.some(a => a.includes(CANARY)), 'no argv holds the value')
  writeFileSync(join(taskDir, '.go'), '')
  await waitFor('the CLI to end', () => cli.child.exitCode !== null, 30_000, 50)
  const r = await cli.stop()
  t.equal(r.code, 0, r.stderr)
  t.equal(readFileSync(join(taskDir, '.exitcode'), 'utf8'), '0')
  t.equal(readFileSync(join(taskDir, '.command.out'), 'utf8').trim(), sha(CANARY), 'the task read TOKEN through the sourced file')
  t.equal(readFileSync(join(taskDir, '.seen-stat'), 'utf8').trim(), '600:alice')
  t.equal(readFileSync(join(taskDir, '.seen-count'), 'utf8').trim(), '2', 'TOKEN and DB_PASS, not UNUSED')
  t.notOk(existsSync(file), 'the secrets file is gone')
  t.same(readdirSync(aliceStoreDir), [], 'nothing else was left')
  t.match(await runOf(file), { state: 'completed', targets: { hpc: { state: 'revoked' } } }, 'a run in the ledger, revoked at its end')
  t.notMatch(r.stdout + r.stderr, CANARY)
})

t.test('a task of a run nf-secrets provisioned: its run dir made again, as alice\'s, removed after', async t => {
  const launch = own(alice!, join(aliceHome, 'launch'))
  const armed = json<{ runId: string, env: { NXF_SECRETS_FILE: string } }>((await as('alice', ['arm', '--all', '--dir', launch, '--json'])).stdout)
  const file = join(dirname(armed.env.NXF_SECRETS_FILE), `.nf-${HASH}.secrets`)
  const taskDir = task(alice!, join(aliceHome, 'work', '12', '345678'), file)

  const live = await as('alice', ['rerun', taskDir])
  t.equal(live.code, 5, live.stderr)
  t.equal(errorCode(live.stderr), 'NFS_ERR_CONFLICT', 'refused while the run still holds its dir')
  t.ok(existsSync(armed.env.NXF_SECRETS_FILE), 'the live run\'s store is untouched')

  t.equal((await as('alice', ['runs', 'revoke', armed.runId])).code, 0)
  t.notOk(existsSync(dirname(file)))
  const r = await as('alice', ['rerun', taskDir, '--', 'bash', '-c', `stat -c %a:%U ${dirname(file)} ${file} > .seen; exec bash .command.run`])
  t.equal(r.code, 0, r.stderr)
  t.equal(readFileSync(join(taskDir, '.command.out'), 'utf8').trim(), sha(CANARY))
  t.same(readFileSync(join(taskDir, '.seen'), 'utf8').trim().split('\n'), ['700:alice', '600:alice'])
  t.notOk(existsSync(dirname(file)), 'the run dir is gone again')
})

t.test('a task of a workspace run: the earlier run\'s workspace is the rerun\'s', async t => {
  t.equal((await runCli(['workspaces', 'create', 'lab', '--owner', 'alice'], { env: { NF_SECRETS_SOCKET: d.socket } })).code, 0)
  t.equal((await as('alice', ['secrets', 'add', 'LAB_ONLY', '-w', 'lab'], { input: 'lab-value' })).code, 0)
  const launch = own(alice!, join(aliceHome, 'launch-lab'))
  const armed = json<{ runId: string, env: { NXF_SECRETS_FILE: string } }>((await as('alice', ['arm', '--all', '-w', 'lab', '--dir', launch, '--json'])).stdout)
  t.equal((await as('alice', ['runs', 'revoke', armed.runId])).code, 0)
  const file = join(dirname(armed.env.NXF_SECRETS_FILE), `.nf-${HASH}.secrets`)
  const taskDir = writeTask(join(aliceHome, 'work', 'la', 'b00001'), { secretsFile: file, names: ['LAB_ONLY'], script: 'test "$LAB_ONLY" = lab-value', owner: alice! })
  const r = await as('alice', ['rerun', taskDir])
  t.equal(r.code, 0, r.stderr)
  t.equal(readFileSync(join(taskDir, '.exitcode'), 'utf8'), '0', 'the task got the workspace\'s secret without -w')
  t.notOk(existsSync(dirname(file)))
})

t.test('the command fails, or its CLI is killed: the file is gone all the same', async t => {
  const file = join(aliceStoreDir, `.nf-${'1'.repeat(32)}.secrets`)
  const taskDir = task(alice!, join(aliceHome, 'work', 'fa', 'il0001'), file)
  const failed = await as('alice', ['rerun', taskDir, '--', 'bash', '-c', 'exit 3'])
  t.equal(failed.code, 3, 'the command\'s own status')
  t.notOk(existsSync(file))

  const cli = spawnCli(t, ['rerun', taskDir, '--', 'bash', '-c', 'while [ ! -e .go ]; do sleep 0.05; done'], { user: 'alice', cwd: aliceHome, env: { NF_SECRETS_SOCKET: d.socket } })
  // The answer reached the CLI (the file is there a moment before): from here its command runs.
  await cli.waitFor('stderr', /rerun [0-9A-Za-z]{14}:/)
  t.ok(existsSync(file))
  const run = (await runOf(file))!
  process.kill(run.pid, 'SIGKILL')
  await waitFor('the killed CLI\'s run to be revoked', async () => !existsSync(file) && (await runOf(file))?.targets.hpc.state === 'revoked', 30_000, 50)
  t.match(await runOf(file), { runId: run.runId, targets: { hpc: { state: 'revoked' } } })
  writeFileSync(join(taskDir, '.go'), '')
  await cli.stop()
})

t.test('attacks as bob', async t => {
  const aliceFile = join(aliceStoreDir, `.nf-${'2'.repeat(32)}.secrets`)
  // alice's task dir, even one bob may write into: not his.
  const aliceTask = task(alice!, join(aliceHome, 'work', 'aa', 'open00'), aliceFile, 0o777)
  const theirs = await as('bob', ['rerun', aliceTask])
  t.equal(theirs.code, 4, theirs.stderr)
  t.equal(errorCode(theirs.stderr), 'NFS_ERR_FORBIDDEN')
  t.notOk(existsSync(aliceFile))

  // A symlink planted at the path his own task sources: to a file of alice's bob could write, and into /etc.
  const victim = join(aliceHome, 'victim.txt')
  writeFileSync(victim, 'keep me', { mode: 0o666 })
  chmodSync(victim, 0o666)
  chownSync(victim, alice!.uid, alice!.gid)
  const etc = `/etc/nfs-rerun-${process.pid}`
  for (const [i, target] of [victim, etc].entries()) {
    const link = join(bobStoreDir, `.nf-${String(3 + i).repeat(32)}.secrets`)
    symlinkSync(target, link)
    const bobTask = task(bob!, join(bobHome, 'work', 'sy', `link0${i}`), link)
    const r = await as('bob', ['rerun', bobTask])
    t.equal(r.code, 1, r.stderr)
    t.equal(errorCode(r.stderr), 'NFS_ERR_UNSAFE_PATH', `a symlink to ${target}`)
    t.ok(lstatSync(link).isSymbolicLink(), 'the symlink is left as it was')
  }
  t.equal(readFileSync(victim, 'utf8'), 'keep me', 'nothing written through the symlink')
  t.notOk(existsSync(etc), 'nothing created in /etc')

  // A file already there that the rerun did not make: refused, and not removed by the undo.
  const mine = join(bobStoreDir, `.nf-${'5'.repeat(32)}.secrets`)
  writeFileSync(mine, 'export TOKEN="bob-old"\n', { mode: 0o600 })
  chownSync(mine, bob!.uid, bob!.gid)
  const pre = await as('bob', ['rerun', task(bob!, join(bobHome, 'work', 'pr', 'e00001'), mine)])
  t.equal(errorCode(pre.stderr), 'NFS_ERR_UNSAFE_PATH', pre.stderr)
  t.equal(readFileSync(mine, 'utf8'), 'export TOKEN="bob-old"\n', 'the file is left as it was')

  // His own task naming a path in alice's tree, or alice's old run dir in the runs root: nothing made there.
  const inAlices = join(aliceStoreDir, `.nf-${'6'.repeat(32)}.secrets`)
  const r1 = await as('bob', ['rerun', task(bob!, join(bobHome, 'work', 'in', 'alice1'), inAlices)])
  t.not(r1.code, 0, r1.stderr)
  t.notOk(existsSync(inAlices))
  const aliceRunDir = join(dir, 'runs', 'alice', 'Zz0Zz0Zz0Zz0Zz')
  const r2 = await as('bob', ['rerun', task(bob!, join(bobHome, 'work', 'in', 'alice2'), join(aliceRunDir, `.nf-${HASH}.secrets`))])
  t.not(r2.code, 0, r2.stderr)
  t.notOk(existsSync(aliceRunDir))

  // The task dir swapped for a symlink to alice's after the CLI read it: the daemon sees the swap, through its handle.
  const swapped = join(bobHome, 'work', 'sw', 'ap0001')
  mkdirSync(dirname(swapped), { recursive: true })
  chownSync(dirname(swapped), bob!.uid, bob!.gid)
  symlinkSync(aliceTask, swapped)
  const via = join(bobHome, 'via')
  symlinkSync(dirname(aliceTask), via)
  for (const [launchDir, code] of [[swapped, 'NFS_ERR_UNSAFE_PATH'], [join(via, 'open00'), 'NFS_ERR_FORBIDDEN']] as const) {
    const body = JSON.stringify({ mode: 'run', launchDir, names: ['TOKEN'], secretsFile: join(bobStoreDir, `.nf-${'7'.repeat(32)}.secrets`) })
    const res = await rawRequest({ socket: d.socket, method: 'POST', path: '/api/v1/runs', headers: { 'content-type': 'application/json' }, body }, { user: 'bob' })
    t.equal(json<{ code: string }>(res.body).code, code, `${launchDir}: ${res.body}`)
  }
  t.same(readdirSync(bobStoreDir).filter(n => !lstatSync(join(bobStoreDir, n)).isSymbolicLink()), [`.nf-${'5'.repeat(32)}.secrets`], 'no file of any refused rerun was left')
})

t.test('a daemon restart: a rerun whose CLI died meanwhile is revoked, its file removed', async t => {
  const file = join(aliceStoreDir, `.nf-${'8'.repeat(32)}.secrets`)
  const taskDir = task(alice!, join(aliceHome, 'work', 're', 'start1'), file)
  const cli = spawnCli(t, ['rerun', taskDir, '--', 'bash', '-c', 'while [ ! -e .go ]; do sleep 0.05; done'], { user: 'alice', cwd: aliceHome, env: { NF_SECRETS_SOCKET: d.socket } })
  // The answer reached the CLI (the file is there a moment before): from here its command runs.
  await cli.waitFor('stderr', /rerun [0-9A-Za-z]{14}:/)
  t.ok(existsSync(file))
  const run = (await runOf(file))!
  t.equal(await d.stop(), 0)
  process.kill(run.pid, 'SIGKILL')
  writeFileSync(join(taskDir, '.go'), '')
  await cli.stop()
  t.ok(existsSync(file), 'still there while the daemon is down')
  d = await startTestDaemon(t, { mode: 'system', dir, config, build: false })
  await waitFor('the revoke after the restart', async () => !existsSync(file) && (await runOf(file))?.targets.hpc.state === 'revoked', 30_000, 50)
  t.match(await runOf(file), { runId: run.runId, targets: { hpc: { state: 'revoked' } } })
})

t.test('the canary is in no log, ledger or audit line', async t => {
  const state = join(dir, 'state')
  const texts = [d.log(), ...readdirSync(state).filter(f => /\.(json|log)$/.test(f) && f !== 'store.json').map(f => readFileSync(join(state, f), 'utf8'))]
  t.ok(texts.length >= 3)
  for (const text of texts) t.notMatch(text, CANARY)
})
