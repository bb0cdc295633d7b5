// A shared project dir (setgid, group-writable, umask 002) of a real group of alice and bob: bob, a member, attacks
// alice's runs through files that are hers but that the group can write (issue 13, "suspicious code"):
// - an `OK` line appended to her history, a Goodbye appended to her log: her run must not end (it did: secrets
//   revoked mid-run);
// - her session LOCK held by a process of his after her Nextflow died: her run must not stay "alive" for ever;
// - his forged start line in her history must make no auto-run of hers.
// Her own clean end is still seen (the terminal line believed once her lock is gone).
import t from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { SecretValue } from '../../daemon/secret-value.js'
import { sessionLockHolder } from '../../daemon/runs/liveness/session-lock.js'
import { startFakeNextflow, type FakeNextflow } from '../helpers/fake-nextflow.js'
import { caller } from '../helpers/runs.js'
import { ensureUsers } from '../helpers/users.js'
import { waitFor, watchFixture, type WatchFixture } from '../helpers/watch.js'

const [alice] = ensureUsers(['alice', 'bob'])
// setpriv execs (runuser forks and waits): the pid spawned is bob's process itself, so killing it ends it.
const AS_BOB = ['--reuid', 'bob', '--regid', 'bob', '--init-groups', '--']
const GROUP = `nfsshare${process.pid % 100000}`

function asBob (script: string): void {
  execFileSync('runuser', ['-u', 'bob', '--', '/bin/sh', '-c', script], { stdio: 'pipe' })
}

function ts (): string {
  const d = new Date()
  const p = (n: number, w = 2): string => String(n).padStart(w, '0')
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`
}

function goodbyeLine (): string {
  const d = new Date()
  const mon = d.toLocaleString('en-US', { month: 'short' })
  const p = (n: number, w = 2): string => String(n).padStart(w, '0')
  return `${mon}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)} [main] DEBUG nextflow.script.ScriptRunner - > Execution complete -- Goodbye`
}

/** A group of alice and bob for this file alone, removed at the end. */
function sharedGroup (t: { teardown: (fn: () => void) => void }): number {
  execFileSync('groupadd', [GROUP])
  t.teardown(() => { execFileSync('groupdel', [GROUP]) })
  execFileSync('usermod', ['-a', '-G', GROUP, 'alice'])
  execFileSync('usermod', ['-a', '-G', GROUP, 'bob'])
  return Number(execFileSync('getent', ['group', GROUP], { encoding: 'utf8' }).split(':')[2])
}

/** alice's launch dir in a setgid group dir, and her Nextflow in it with umask 002 (what makes her files g+w). */
async function aliceRun (t: { teardown: (fn: () => unknown) => void }, f: WatchFixture, gid: number, name: string): Promise<{ runId: string, launchDir: string, nf: FakeNextflow }> {
  const launchDir = join(f.root, name)
  mkdirSync(launchDir)
  chownSync(launchDir, alice!.uid, gid)
  chmodSync(launchDir, 0o2775)
  const created = await f.runs.create(caller('alice', { uid: alice!.uid, gid: alice!.gid }), { mode: 'arm', launchDir, targets: ['memory'] })
  const old = process.umask(0o002)
  let nf: FakeNextflow
  try {
    nf = await startFakeNextflow({ launchDir, sessionId: created.sessionId, uid: alice!.uid, gid: alice!.gid })
  } finally {
    process.umask(old)
  }
  t.teardown(() => nf.close())
  // The fake opens the log and the LOCK 0644 where Java asks for 0666: with umask 002 Nextflow's are 0664.
  for (const p of [join(launchDir, '.nextflow.log'), nf.lockPath]) chmodSync(p, 0o664)
  return { runId: created.runId, launchDir, nf }
}

t.test('bob cannot end alice\'s run with lines appended to her group-writable history or log', async t => {
  const gid = sharedGroup(t)
  const f = await watchFixture(t, { mode: 'system', watch: [{ depth: 2 }] })
  chmodSync(f.dir, 0o755)
  chmodSync(f.root, 0o755)
  await f.store.createSecret('user:alice', 'ALICE_TOKEN', new SecretValue('alice-value'), 'alice')
  const r = await aliceRun(t, f, gid, 'proj')
  await waitFor('running', async () => { await f.monitor.checkRun(r.runId); return f.ledger.get(r.runId)?.state === 'running' })
  t.equal(f.ledger.get(r.runId)?.runName, r.nf.runName)

  // Her line rewritten in place as OK (truncate and write: the file stays hers, as Nextflow's own rewrite does).
  asBob(`python3 -c 'import sys; p = sys.argv[1]; t = open(p).read().replace("\\t-\\t" + sys.argv[2] + "\\t-\\t", "\\t1s\\t" + sys.argv[2] + "\\tOK\\t"); open(p, "w").write(t)' '${join(r.launchDir, '.nextflow', 'history')}' '${r.nf.runName}'`)
  t.match(readFileSync(join(r.launchDir, '.nextflow', 'history'), 'utf8'), `\t${r.nf.runName}\tOK\t`, 'bob could rewrite her line')
  t.equal(statSync(join(r.launchDir, '.nextflow', 'history')).uid, alice!.uid, 'and it is still her file')
  for (let i = 0; i < 3; i++) await f.monitor.checkRun(r.runId)
  t.equal(f.ledger.get(r.runId)?.state, 'running', 'an OK line bob appended does not end her run')
  asBob(`printf '%s\\n' '${goodbyeLine()}' >> '${join(r.launchDir, '.nextflow.log')}'`)
  for (let i = 0; i < 3; i++) await f.monitor.checkRun(r.runId)
  t.equal(f.ledger.get(r.runId)?.state, 'running', 'nor a Goodbye bob appended to her log')
  t.equal(f.ledger.get(r.runId)?.targets.memory?.state, 'provisioned', 'her secrets are still there')

  // Her own end: the lock goes, the terminal line is believed.
  await r.nf.finish('OK')
  await waitFor('completed', async () => { await f.monitor.checkRun(r.runId); return f.ledger.get(r.runId)?.state === 'completed' })
})

t.test('bob holding alice\'s session LOCK does not keep her dead run alive', async t => {
  const gid = sharedGroup(t)
  const f = await watchFixture(t, { mode: 'system' })
  chmodSync(f.dir, 0o755)
  chmodSync(f.root, 0o755)
  await f.store.createSecret('user:alice', 'ALICE_TOKEN', new SecretValue('alice-value'), 'alice')
  // What a SIGKILLed Nextflow of hers leaves in a umask-002 project dir: her `-` line, her LOCK (0664), no holder.
  const launchDir = join(f.root, 'proj-lock')
  mkdirSync(launchDir)
  chownSync(launchDir, alice!.uid, gid)
  chmodSync(launchDir, 0o2775)
  const created = await f.runs.create(caller('alice', { uid: alice!.uid, gid: alice!.gid }), { mode: 'arm', launchDir, targets: ['memory'] })
  const db = join(launchDir, '.nextflow', 'cache', created.sessionId, 'db')
  mkdirSync(db, { recursive: true })
  for (const p of [launchDir, join(launchDir, '.nextflow'), join(launchDir, '.nextflow', 'cache'), join(launchDir, '.nextflow', 'cache', created.sessionId), db]) {
    chownSync(p, alice!.uid, gid)
    chmodSync(p, 0o2775)
  }
  // Her history alone is hers to write here (its start counts at once): the attack is on the lock only.
  chmodSync(join(launchDir, '.nextflow'), 0o2755)
  const lock = join(db, 'LOCK')
  writeFileSync(lock, '', { mode: 0o664 })
  chownSync(lock, alice!.uid, gid)
  chmodSync(lock, 0o664)
  const history = join(launchDir, '.nextflow', 'history')
  writeFileSync(history, `${ts()}\t-\tsleepy_turing\t-\tabc1234567\t${created.sessionId}\tnextflow run main.nf\n`)
  chownSync(history, alice!.uid, gid)
  chmodSync(history, 0o644)

  // bob takes the lock of her LOCK file and holds it.
  const holder = spawn('setpriv', [...AS_BOB, '/usr/bin/python3', '-c',
    'import fcntl,sys,time\nf=open(sys.argv[1],"r+")\nfcntl.lockf(f,fcntl.LOCK_EX|fcntl.LOCK_NB)\nprint("locked",flush=True)\ntime.sleep(600)', lock], { stdio: ['ignore', 'pipe', 'inherit'] })
  const held = once(createInterface({ input: holder.stdout! }), 'line')
  const gone = once(holder, 'exit')
  t.teardown(async () => { if (holder.exitCode === null && holder.signalCode === null) { holder.kill('SIGKILL'); await gone } })
  t.same(await held, ['locked'])
  t.equal((await sessionLockHolder(launchDir, created.sessionId)).held, true, 'the lock is held (by bob)')
  t.same(await sessionLockHolder(launchDir, created.sessionId, alice!.uid), { held: false, pid: null }, 'but not by a process of hers')

  // Three passes: a watch event read between them counts as a first dead reading, confirmed two passes on (run-check.ts).
  for (let i = 0; i < 3; i++) await f.monitor.tick()
  t.equal(f.ledger.get(created.runId)?.state, 'killed', 'her dead run ends (a lock of bob\'s says nothing about her session)')
  await waitFor('revoked', () => f.ledger.get(created.runId)?.targets.memory?.state === 'revoked')
})

t.test('a LOCK bob created in a group-writable cache does not count for alice', async t => {
  const gid = sharedGroup(t)
  const f = await watchFixture(t, { mode: 'system' })
  chmodSync(f.dir, 0o755)
  chmodSync(f.root, 0o755)
  const dir = join(f.root, 'cache-attack')
  mkdirSync(join(dir, '.nextflow', 'cache'), { recursive: true })
  for (const p of [dir, join(dir, '.nextflow'), join(dir, '.nextflow', 'cache')]) { chownSync(p, alice!.uid, gid); chmodSync(p, 0o2775) }
  const session = crypto.randomUUID()
  const lock = join(dir, '.nextflow', 'cache', session, 'db', 'LOCK')
  const holder = spawn('setpriv', [...AS_BOB, '/usr/bin/python3', '-c',
    'import fcntl,os,sys,time\nos.makedirs(os.path.dirname(sys.argv[1]))\nf=open(sys.argv[1],"w")\nfcntl.lockf(f,fcntl.LOCK_EX|fcntl.LOCK_NB)\nprint("locked",flush=True)\ntime.sleep(600)', lock], { stdio: ['ignore', 'pipe', 'inherit'] })
  const gone = once(holder, 'exit')
  t.teardown(async () => { if (holder.exitCode === null && holder.signalCode === null) { holder.kill('SIGKILL'); await gone } })
  t.same(await once(createInterface({ input: holder.stdout! }), 'line'), ['locked'])
  t.equal((await sessionLockHolder(dir, session)).held, true)
  t.same(await sessionLockHolder(dir, session, alice!.uid), { held: false, pid: null })
})

t.test('bob\'s forged start line in alice\'s group-writable history makes no auto-run of hers', async t => {
  const gid = sharedGroup(t)
  const f = await watchFixture(t, { mode: 'system', watch: [{ depth: 2, targets: ['memory'] }] })
  chmodSync(f.dir, 0o755)
  chmodSync(f.root, 0o755)
  await f.store.createSecret('user:alice', 'ALICE_TOKEN', new SecretValue('alice-value'), 'alice')
  const dir = join(f.root, 'proj-forge')
  mkdirSync(join(dir, '.nextflow'), { recursive: true })
  for (const p of [dir, join(dir, '.nextflow')]) { chownSync(p, alice!.uid, gid); chmodSync(p, 0o2775) }
  const history = join(dir, '.nextflow', 'history')
  writeFileSync(history, '')
  chownSync(history, alice!.uid, gid)
  chmodSync(history, 0o664)
  await waitFor('found', () => f.service.summary().launchDirs === 1)
  asBob(`printf '%s\\t-\\tforged_start\\t-\\tabc1234567\\t%s\\tnextflow run main.nf\\n' '${ts()}' '${crypto.randomUUID()}' >> '${history}'`)
  await waitFor('skipped', () => f.events.some(e => e.type === 'run.skipped' && e.user === 'alice'))
  t.notOk(f.ledger.all().some(x => x.user === 'alice'), 'no run of alice\'s')
  t.match(f.events.find(e => e.type === 'run.skipped')?.reason, /writable by others/)
})
