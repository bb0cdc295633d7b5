// The hpc target as root against a hostile user: alice plants symlinks wherever she could (and, to test the
// defence in depth, where only a misconfiguration would let her), each pointing at root-owned canaries
// outside the runs root. Nothing outside the runs root may be written, chowned or removed; every operation
// either refuses with NFS_ERR_UNSAFE_PATH or succeeds safely. Also: bob cannot read alice's store, and no
// value ever shows up in a process's argv or in the log.
import t from 'tap'
import type { Test } from 'tap'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import {
  chmodSync, chownSync, existsSync, lchownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync,
  rmSync, symlinkSync, writeFileSync
} from 'node:fs'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { createHpcTarget } from '../../adapters/hpc.js'
import { writeStoreAndHandOver } from '../../adapters/hpc/store-staging.js'
import { makeRunDir, resolveTrustedDir, walksAtOnce } from '../../adapters/hpc/trusted-dirs.js'
import type { Target, TargetRun } from '../../adapters/types.js'
import { SecretValue } from '../../daemon/secret-value.js'
import { requireUsers } from '../helpers/requires.js'

const [alice, bob] = requireUsers(t, ['alice', 'bob', 'carol']) as [{ name: string, uid: number, gid: number }, { name: string, uid: number, gid: number }]
const RUN_ID = 'Rattack0000001'
const CANARY_VALUE = 'cAnArY-' + Math.random().toString(36).slice(2) + '-vAlUe'

interface Fixture { top: string, runsRoot: string, canaryDir: string, canaryFile: string, target: Target, logText: () => string }

// A root-owned world outside the runs root that must come through every attack unchanged.
function setup (t: Test, runsRootName = 'runs'): Fixture {
  const top = mkdtempSync('/tmp/nfs-hpc-root-')
  chmodSync(top, 0o755)
  t.teardown(() => rmSync(top, { recursive: true, force: true }))
  const canaryDir = join(top, 'canary')
  mkdirSync(join(canaryDir, RUN_ID), { recursive: true, mode: 0o755 })
  writeFileSync(join(canaryDir, 'passwd'), 'root:x:0:0\n', { mode: 0o644 })
  writeFileSync(join(canaryDir, RUN_ID, 'store.json'), 'root-owned, not a store', { mode: 0o644 })
  const canaryFile = join(top, 'shadow')
  writeFileSync(canaryFile, 'root-secret-file\n', { mode: 0o640 })
  const lines: string[] = []
  const sink = new Writable({ write (chunk, _enc, cb) { lines.push(String(chunk)); cb() } })
  const target = createHpcTarget({ runsRoot: join(top, runsRootName), privileged: true, logger: pino({ level: 'debug' }, sink) })
  t.teardown(() => target.close())
  return { top, runsRoot: join(top, runsRootName), canaryDir, canaryFile, target, logText: () => lines.join('') }
}

// Everything about a path that an attack could change, without following symlinks.
function snapshot (path: string): unknown[] {
  const out: unknown[] = []
  const walk = (p: string): void => {
    const st = lstatSync(p)
    const entry: Record<string, unknown> = { p, mode: st.mode, uid: st.uid, gid: st.gid, ino: st.ino, size: st.size }
    if (st.isFile()) entry.content = readFileSync(p, 'utf8')
    if (st.isSymbolicLink()) entry.link = readlinkSync(p)
    out.push(entry)
    if (st.isDirectory()) for (const e of readdirSync(p).sort()) walk(join(p, e))
  }
  walk(path)
  return out
}

function canaries (f: Fixture): unknown[] {
  return [snapshot(f.canaryDir), snapshot(f.canaryFile)]
}

function runOf (user: { name: string, uid: number, gid: number }, runId = RUN_ID): TargetRun {
  return { runId, sessionId: '0b7e9a52-1111-4222-8333-444455556666', user: user.name, uid: user.uid, gid: user.gid, workspace: 'personal', launchDir: '/tmp', host: 'h', names: ['TOKEN'] }
}

const secrets = (): Map<string, SecretValue> => new Map([['TOKEN', new SecretValue(CANARY_VALUE)]])

// As alice: what she can do herself, with her own credentials.
function asAlice (script: string, ...args: string[]): void {
  execFileSync('runuser', ['-u', 'alice', '--', 'sh', '-c', script, 'sh', ...args])
}

// Planting where alice has no write access stands for a misconfigured or compromised tree: the target must
// not rely on users being unable to get there.
function plantAsAlice (path: string, to: string): void {
  symlinkSync(to, path)
  lchownSync(path, alice.uid, alice.gid)
}

t.test('(a) a symlink at <runsRoot>/alice to a root-owned dir: refused, nothing followed', async t => {
  const f = setup(t)
  mkdirSync(f.runsRoot, { mode: 0o711 })
  plantAsAlice(join(f.runsRoot, 'alice'), f.canaryDir)
  const before = canaries(f)
  await t.rejects(f.target.provision(runOf(alice), secrets()), { code: 'NFS_ERR_UNSAFE_PATH' })
  await t.rejects(f.target.revoke(runOf(alice)), { code: 'NFS_ERR_UNSAFE_PATH' })
  t.equal(await f.target.sweep(() => 'unknown'), 0)
  t.same(canaries(f), before)
  t.ok(lstatSync(join(f.runsRoot, 'alice')).isSymbolicLink(), 'the planted link itself is left for an admin')
})

t.test('(a) a user-owned dir at <runsRoot>/alice, a world-writable runs root, a user symlink above it: refused', async t => {
  const f = setup(t)
  mkdirSync(f.runsRoot, { mode: 0o711 })
  mkdirSync(join(f.runsRoot, 'alice'), { mode: 0o755 })
  lchownSync(join(f.runsRoot, 'alice'), alice.uid, alice.gid)
  await t.rejects(f.target.provision(runOf(alice), secrets()), { code: 'NFS_ERR_UNSAFE_PATH' })
  t.same(readdirSync(join(f.runsRoot, 'alice')), [])

  const open = setup(t)
  mkdirSync(open.runsRoot)
  chmodSync(open.runsRoot, 0o1777)
  await t.rejects(open.target.provision(runOf(alice), secrets()), { code: 'NFS_ERR_UNSAFE_PATH' })
  t.same(readdirSync(open.runsRoot), [])

  // runsRoot = <top>/link/runs where alice owns `link` -> the canary dir: no `runs` may appear in it.
  const above = setup(t, 'link/runs')
  plantAsAlice(join(above.top, 'link'), above.canaryDir)
  const before = canaries(above)
  await t.rejects(above.target.provision(runOf(alice), secrets()), { code: 'NFS_ERR_UNSAFE_PATH' })
  t.equal((await above.target.status()).usable, false)
  t.same(canaries(above), before)
})

t.test('(b) a symlink at the run dir path: provision refuses, revoke unlinks only the link', async t => {
  const f = setup(t)
  await f.target.status() // creates the runs root
  mkdirSync(join(f.runsRoot, 'alice'), { mode: 0o711 })
  plantAsAlice(join(f.runsRoot, 'alice', RUN_ID), join(f.canaryDir, RUN_ID))
  const before = canaries(f)
  await t.rejects(f.target.provision(runOf(alice), secrets()), { code: 'NFS_ERR_UNSAFE_PATH' })
  t.same(canaries(f), before)
  await f.target.revoke(runOf(alice))
  t.throws(() => lstatSync(join(f.runsRoot, 'alice', RUN_ID)), { code: 'ENOENT' })
  t.same(canaries(f), before)
})

t.test('(c) a symlink at the store path: a retry replaces it; O_EXCL|O_NOFOLLOW never opens it', async t => {
  const f = setup(t)
  const first = await f.target.provision(runOf(alice), secrets())
  const store = first.env.NXF_SECRETS_FILE!
  asAlice('rm -f "$1" && ln -s "$2" "$1"', store, f.canaryFile)
  const before = canaries(f)
  const again = await f.target.provision(runOf(alice), secrets())
  t.equal(again.env.NXF_SECRETS_FILE, store)
  const st = lstatSync(store)
  t.ok(st.isFile(), 'a fresh regular file')
  t.same([st.uid, st.mode & 0o7777], [alice.uid, 0o600])
  t.match(readFileSync(store, 'utf8'), CANARY_VALUE)
  t.same(canaries(f), before)

  // The low-level step on its own: a store.json symlink already in the dir makes the create fail.
  const runDir = join(f.top, 'lowlevel')
  await makeRunDir(runDir)
  symlinkSync(f.canaryFile, join(runDir, 'store.json'))
  await t.rejects(writeStoreAndHandOver(runDir, Buffer.from('[]'), { uid: alice.uid, gid: alice.gid }), { code: 'EEXIST' })
  t.same(canaries(f), before)
  t.equal(lstatSync(runDir).uid, 0, 'the dir is not handed over after a failure')
})

t.test('(d) symlinks and junk inside the run dir: revoke removes all of it, and only it', async t => {
  const f = setup(t)
  const placement = await f.target.provision(runOf(alice), secrets())
  const runDir = join(f.runsRoot, 'alice', RUN_ID)
  asAlice([
    'cd "$1"',
    'printf \'export TOKEN="x"\\n\' > .nf-0123456789abcdef0123456789abcdef.secrets',
    'ln -s "$2" sub', 'ln -s "$3" link', 'ln -s "$2/passwd" passwd',
    'mkdir -p deep/er && ln -s "$2" deep/er/up && touch deep/er/file && chmod 500 deep/er deep',
    'mkfifo pipe', 'rm store.json && ln -s "$3" store.json'
  ].join(' && '), runDir, f.canaryDir, f.canaryFile)
  const before = canaries(f)
  await f.target.revoke(runOf(alice))
  t.throws(() => lstatSync(runDir), { code: 'ENOENT' })
  t.same(canaries(f), before)
  t.notOk(placement.env.NXF_SECRETS_FILE!.includes('..'))

  // The same planted tree found by a sweep (daemon restarted, run unknown to the ledger).
  await f.target.provision(runOf(alice), secrets())
  asAlice('cd "$1" && ln -s "$2" sub && ln -s "$3" link && chmod 500 "$1"', runDir, f.canaryDir, f.canaryFile)
  t.equal(await f.target.sweep(() => 'terminal'), 1)
  t.throws(() => lstatSync(runDir), { code: 'ENOENT' })
  t.same(canaries(f), before)
})

t.test('(e) only plain entries in the run dir (the fast path, root unlinks): symlinks, a fifo, a hard link; nothing followed', async t => {
  const f = setup(t)
  await f.target.provision(runOf(alice), secrets())
  const runDir = join(f.runsRoot, 'alice', RUN_ID)
  asAlice([
    'cd "$1"',
    'printf \'export TOKEN="x"\\n\' > .nf-0123456789abcdef0123456789abcdef.secrets',
    'ln -s "$2" sub', 'ln -s "$3" link', 'mkfifo pipe', 'ln store.json hard', 'chmod 500 "$1"'
  ].join(' && '), runDir, f.canaryDir, f.canaryFile)
  const before = canaries(f)
  await f.target.revoke(runOf(alice))
  t.throws(() => lstatSync(runDir), { code: 'ENOENT' })
  t.same(canaries(f), before, 'no symlink target was touched')
  await f.target.revoke(runOf(alice))
  t.pass('a second revoke finds nothing and succeeds')
})

t.test('contents go with alice\'s credentials: what alice cannot delete, revoke does not delete either', async t => {
  const f = setup(t)
  await f.target.provision(runOf(alice), secrets())
  const runDir = join(f.runsRoot, 'alice', RUN_ID)
  // Root-owned content in alice's dir (she cannot delete inside it): proof that root does not do the removal.
  mkdirSync(join(runDir, 'rootdir'), { mode: 0o755 })
  writeFileSync(join(runDir, 'rootdir', 'kept'), 'x')
  await t.rejects(f.target.revoke(runOf(alice)), { code: 'NFS_ERR_REVOKE_FAILED' })
  t.equal(readFileSync(join(runDir, 'rootdir', 'kept'), 'utf8'), 'x')
  t.throws(() => lstatSync(join(runDir, 'store.json')), { code: 'ENOENT' }, 'alice\'s own files are gone')
  rmSync(join(runDir, 'rootdir'), { recursive: true })
  await f.target.revoke(runOf(alice))
  t.throws(() => lstatSync(runDir), { code: 'ENOENT' })
})

t.test('alice can read her store, bob cannot', async t => {
  const f = setup(t)
  const store = (await f.target.provision(runOf(alice), secrets())).env.NXF_SECRETS_FILE!
  t.match(execFileSync('runuser', ['-u', 'alice', '--', 'cat', store], { encoding: 'utf8' }), CANARY_VALUE)
  const asBob = spawnSync('runuser', ['-u', 'bob', '--', 'cat', store], { encoding: 'utf8' })
  t.not(asBob.status, 0)
  t.notMatch(asBob.stdout, CANARY_VALUE)
  const bobListing = spawnSync('runuser', ['-u', 'bob', '--', 'ls', join(f.runsRoot, 'alice')], { encoding: 'utf8' })
  t.not(bobListing.status, 0, 'bob cannot even list alice\'s run ids')
  t.equal(bob.name, 'bob')
})

// Watches every process's argv from a separate process while we provision and revoke in a loop. A control
// marker in a child's argv proves the watcher sees short-lived processes at all.
const SCANNER = `
const fs = require('node:fs')
const { SECRET, CONTROL } = process.env
let passes = 0, control = 0, stop = false
const hits = []
process.on('SIGTERM', () => { stop = true })
function scan () {
  for (const d of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(d)) continue
    let c
    try { c = fs.readFileSync('/proc/' + d + '/cmdline', 'latin1') } catch { continue }
    if (c.includes(SECRET)) hits.push(d)
    if (c.includes(CONTROL)) control++
  }
  passes++
  if (passes === 1) process.stdout.write('ready\\n')
  if (stop) process.stdout.write(JSON.stringify({ passes, control, hits }) + '\\n')
  else setImmediate(scan)
}
scan()
`

t.test('no value in any process argv during provision and revoke, none in the log', async t => {
  const f = setup(t)
  const control = 'nfs-control-' + Math.random().toString(36).slice(2)
  const scanner = spawn(process.execPath, ['-e', SCANNER], { env: { SECRET: CANARY_VALUE, CONTROL: control }, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { scanner.kill('SIGKILL') })
  let out = ''
  scanner.stdout.setEncoding('utf8')
  scanner.stdout.on('data', (d: string) => { out += d })
  while (!out.includes('ready')) await new Promise(resolve => setTimeout(resolve, 10))
  for (let i = 0; i < 15; i++) {
    const run = runOf(alice, `Rargv${String(i).padStart(9, '0')}`)
    const store = (await f.target.provision(run, secrets())).env.NXF_SECRETS_FILE!
    asAlice('cp "$1" "$(dirname "$1")/.nf-00000000000000000000000000000000.secrets"', store)
    await f.target.revoke(run)
  }
  spawnSync('sh', ['-c', 'sleep 0.3', control])
  await t.rejects(f.target.provision({ ...runOf(alice), uid: 2 ** 32 }, secrets()), { code: 'NFS_ERR_PROVISION_FAILED' })
  const done = new Promise<void>(resolve => scanner.stdout.on('end', () => resolve()))
  scanner.kill('SIGTERM')
  await done
  const report = JSON.parse(out.split('\n').filter(l => l.startsWith('{'))[0] ?? '{}') as { passes: number, control: number, hits: string[] }
  t.ok(report.passes > 10, `scanned /proc ${report.passes} times`)
  t.ok(report.control > 0, 'the scanner saw the control marker')
  t.same(report.hits, [], 'no process carried the value in its argv')
  t.notMatch(f.logText(), CANARY_VALUE)
  t.match(f.logText(), 'hpc store provisioned')
  t.same(readdirSync(join(f.runsRoot, 'alice')), [], 'the failed provision left nothing')
})

// The runs root's components are looked at together, then checked in turn (trusted-dirs.ts, issue 18). What a walk
// one at a time found is what it finds: a root-owned symlink above the root is followed (also a relative one through
// `..`), and the dirs made in its target; a component alice owns, or a symlink alice owns, anywhere on the way, is
// refused before anything is made below it; a missing tail is made.
t.test('the runs root walk: symlinks, `..` and missing dirs as one component at a time found them', async t => {
  const top = mkdtempSync('/tmp/nfs-hpc-walk-')
  chmodSync(top, 0o755)
  t.teardown(() => rmSync(top, { recursive: true, force: true }))
  mkdirSync(join(top, 'real', 'sub'), { recursive: true, mode: 0o755 })
  symlinkSync(join(top, 'real'), join(top, 'link'))
  symlinkSync('../' + top.split('/').pop()! + '/real', join(top, 'rel'))
  t.equal(await resolveTrustedDir(join(top, 'link', 'sub', 'runs'), true), join(top, 'real', 'sub', 'runs'), 'through a root symlink, the missing tail made')
  t.ok(lstatSync(join(top, 'real', 'sub', 'runs')).isDirectory())
  t.equal(await resolveTrustedDir(join(top, 'rel', 'sub', 'runs'), false), join(top, 'real', 'sub', 'runs'), 'through a relative symlink with ..')
  t.equal(await resolveTrustedDir(join(top, 'real', 'sub', '..', 'sub', 'runs'), false), join(top, 'real', 'sub', 'runs'), 'a path with ..')
  t.equal(await resolveTrustedDir(join(top, 'real', 'none', 'runs'), false), null, 'missing, not made')
  t.notOk(existsSync(join(top, 'real', 'none')))

  mkdirSync(join(top, 'alices'), { mode: 0o755 })
  chownSync(join(top, 'alices'), alice.uid, alice.gid)
  await t.rejects(resolveTrustedDir(join(top, 'alices', 'runs'), true), { code: 'NFS_ERR_UNSAFE_PATH' }, 'a dir of alice on the way')
  t.notOk(existsSync(join(top, 'alices', 'runs')), 'nothing made below it')
  plantAsAlice(join(top, 'alink'), join(top, 'real'))
  await t.rejects(resolveTrustedDir(join(top, 'alink', 'sub', 'runs2'), true), { code: 'NFS_ERR_UNSAFE_PATH' }, 'a symlink of alice on the way')
  t.notOk(existsSync(join(top, 'real', 'sub', 'runs2')), 'nothing made through it')
  // Under /tmp (sticky, anyone may make an entry in it) the components are never looked at before they are checked:
  // an early lstat would go through whatever a user planted there.
  t.equal(await resolveTrustedDir(join(top, 'real', 'sub', 'runs'), false), join(top, 'real', 'sub', 'runs'))
  t.notOk(walksAtOnce(join(top, 'real', 'sub', 'runs')), 'a path below a sticky dir is walked one component at a time')
  t.notOk(walksAtOnce(join(top, 'link', 'sub', 'runs')), 'so is a path through a symlink')
})

// Only a path nobody but root can change is looked at all at once, from its second walk on (the first made it), and
// a walk that is refused, or finds a symlink, ends that.
t.test('the runs root walk looks at all its components at once only where only root can change them', async t => {
  const base = mkdtempSync('/var/lib/nfs-hpc-walk-')
  chmodSync(base, 0o755)
  t.teardown(() => rmSync(base, { recursive: true, force: true }))
  const runs = join(base, 'c', 'runs')
  t.equal(await resolveTrustedDir(runs, true), runs, 'made')
  t.notOk(walksAtOnce(runs), 'not after the walk that made it')
  t.equal(await resolveTrustedDir(runs, false), runs)
  t.ok(walksAtOnce(runs), 'closed: the next walk looks at once')
  t.equal(await resolveTrustedDir(runs, false), runs, 'and finds the same')
  t.ok(walksAtOnce(runs))
  // Replaced by a symlink of alice (a compromise of root's tree): refused as before, and walked one at a time after.
  rmSync(join(base, 'c'), { recursive: true })
  mkdirSync(join(base, 'elsewhere', 'runs'), { recursive: true, mode: 0o755 })
  plantAsAlice(join(base, 'c'), join(base, 'elsewhere'))
  await t.rejects(resolveTrustedDir(runs, true), { code: 'NFS_ERR_UNSAFE_PATH' }, 'refused')
  t.notOk(walksAtOnce(runs), 'no longer closed')
})
