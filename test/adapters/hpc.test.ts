// The hpc target's store format, fs-type detection and its normal lifecycle with a real user (alice).
// The attacks are in hpc-root.test.ts.
import t from 'tap'
import type { Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, readdirSync, renameSync, statSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { pino } from 'pino'
import { createHpcTarget, isSharedFsType } from '../../adapters/hpc.js'
import { parseRunMarker, writeRunMarker } from '../../adapters/hpc/safe-fs.js'
import { placeStagedStore, stageStore } from '../../adapters/hpc/store-staging.js'
import { makeRunDir } from '../../adapters/hpc/trusted-dirs.js'
import { fsTypeOf, parseMountinfo } from '../../daemon/os/fs-type.js'
import type { TargetRun } from '../../adapters/types.js'
import { SecretValue } from '../../daemon/secret-value.js'
import { requireUsers } from '../helpers/requires.js'
import { waitFor } from '../helpers/wait.js'
import { checkHalfMadeRetry } from '../helpers/hpc-retry.js'

const fixture = readFileSync(new URL('../fixtures/nextflow/store.json', import.meta.url))
const [alice] = requireUsers(t, ['alice', 'bob', 'carol'])

function secrets (obj: Record<string, string>): Map<string, SecretValue> {
  return new Map(Object.entries(obj).map(([k, v]) => [k, new SecretValue(v)]))
}

function testRoot (t: Test): string {
  const dir = mkdtempSync('/tmp/nfs-hpc-')
  chmodSync(dir, 0o755)
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function runOf (user: { name: string, uid: number, gid: number }, runId: string): TargetRun {
  return { runId, sessionId: '6f1d2c3b-0000-4000-8000-00000000abcd', user: user.name, uid: user.uid, gid: user.gid, workspace: 'personal', launchDir: '/tmp', host: 'h', names: [] }
}

t.test('shared filesystem detection', async t => {
  for (const ty of ['nfs', 'nfs4', 'lustre', 'gpfs', 'beegfs', 'cephfs', 'fuse.glusterfs', 'GPFS', 'wekafs']) t.ok(isSharedFsType(ty), ty)
  for (const ty of ['ext4', 'xfs', 'tmpfs', 'overlay', 'btrfs', 'zfs', 'fuse.unknownfs', '']) t.notOk(isSharedFsType(ty), ty)
  const mounts = parseMountinfo([
    '26 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
    '40 26 0:50 / /home rw,relatime shared:1 - nfs4 srv:/home rw,vers=4.2',
    '41 26 0:51 / /scratch\\040space rw - lustre 10.0.0.1@tcp:/scratch rw',
    'garbage line'
  ].join('\n'))
  t.same(mounts.map(m => m.mountPoint), ['/', '/home', '/scratch space'])
  t.equal(fsTypeOf('/home/alice/.nf-secretsd/runs', mounts), 'nfs4')
  t.equal(fsTypeOf('/homeless', mounts), 'ext4')
  t.equal(fsTypeOf('/scratch space/x', mounts), 'lustre')
  t.equal(fsTypeOf('/var/lib/nf-secretsd/runs', mounts), 'ext4')
})

t.test('provision writes the exact store, owned by alice, and revoke removes the whole dir', async t => {
  const top = testRoot(t)
  const runsRoot = join(top, 'runs')
  const target = createHpcTarget({ runsRoot, privileged: true, logger: pino({ level: 'silent' }) })
  t.teardown(() => target.close())
  const run = runOf(alice!, 'R0000000000001')
  const values = { SIGNING_KEY_B64: 'c2lnbmluZy1rZXk=', DB_PASSWORD: 'hunter2', API_TOKEN: 's3cr3t-token', PRICE_TAG: 'costs $5' }
  const placement = await target.provision(run, secrets(values))
  const runDir = join(runsRoot, 'alice', run.runId)
  const store = join(runDir, 'store.json')
  t.same(placement.env, { NXF_SECRETS_FILE: store, NXF_UUID: run.sessionId, NF_SECRETS_RUN_ID: run.runId })
  t.same(placement.refs, Object.keys(values).sort().map(name => ({ name, ref: store })))
  t.same(readFileSync(store), fixture)
  const fst = lstatSync(store)
  t.equal(fst.mode & 0o7777, 0o600)
  t.same([fst.uid, fst.gid], [alice!.uid, alice!.gid])
  const dst = lstatSync(runDir)
  t.equal(dst.mode & 0o7777, 0o700)
  t.same([dst.uid, dst.gid], [alice!.uid, alice!.gid])
  const ust = lstatSync(join(runsRoot, 'alice'))
  t.same([ust.uid, ust.mode & 0o7777], [0, 0o711])
  t.same(readdirSync(runDir).sort(), ['.nf-secretsd-node', 'store.json'], 'the store and the node marker')

  // Nextflow, as alice, can read it; then leaves its export file and more behind.
  t.same(execFileSync('runuser', ['-u', 'alice', '--', 'cat', store]), fixture)
  execFileSync('runuser', ['-u', 'alice', '--', 'sh', '-c',
    'cd "$1" && umask 077 && echo "export X=1" > .nf-0123456789abcdef0123456789abcdef.secrets && mkdir -p a/b && touch a/b/c && chmod 500 a', 'sh', runDir])
  await target.revoke(run)
  t.throws(() => lstatSync(runDir), { code: 'ENOENT' })
  t.ok(lstatSync(join(runsRoot, 'alice')).isDirectory(), 'the user dir stays')
  await target.revoke(run) // idempotent
})

t.test('a retried provision replaces the earlier store, and an empty run gets []', async t => {
  const top = testRoot(t)
  const target = createHpcTarget({ runsRoot: join(top, 'runs'), privileged: true, logger: pino({ level: 'silent' }) })
  const run = runOf(alice!, 'R0000000000002')
  await target.provision(run, secrets({ OLD_ONE: 'x' }))
  const p = await target.provision(run, secrets({}))
  const store = p.env.NXF_SECRETS_FILE!
  t.equal(readFileSync(store, 'utf8'), '[]')
  t.equal(lstatSync(store).uid, alice!.uid)
  await t.rejects(target.provision(run, secrets({ 'BAD-NAME': 'x' })), { code: 'NFS_ERR_INVALID_NAME' })
  await t.rejects(target.provision({ ...run, runId: '../../etc/x' }, secrets({})), { code: 'NFS_ERR_UNSAFE_PATH' })
  await t.rejects(target.provision({ ...run, user: '..' }, secrets({})), { code: 'NFS_ERR_UNSAFE_PATH' })
})

t.test('root: a half-made dir of an earlier try of the same run is replaced, whatever it holds (user mode: hpc-user-mode.test.ts)', async t => {
  const top = testRoot(t)
  const runsRoot = join(top, 'runs')
  const target = createHpcTarget({ runsRoot, privileged: true, nodeId: 'node-a', logger: pino({ level: 'silent' }) })
  await checkHalfMadeRetry(t, { target, top, runsRoot, runOf: runId => runOf(alice!, runId) })
})

t.test('while the intent is written (ready pending) the store is staged: store.json appears only after ready', async t => {
  const top = testRoot(t)
  const runsRoot = join(top, 'runs')
  const target = createHpcTarget({ runsRoot, privileged: true, logger: pino({ level: 'silent' }) })
  const run = runOf(alice!, 'R0000000000004')
  const runDir = join(runsRoot, 'alice', run.runId)
  let open!: () => void
  const ready = new Promise<void>(resolve => { open = resolve })
  const placing = target.provision(run, secrets({ TOKEN: 'CANARY-staged' }), { ready })
  // Wait until the staged file is complete (it is chown'd to alice last).
  const staged = join(runDir, '.store.json.staged')
  await waitFor('the staged store, chown\'d to alice', () => existsSync(staged) && lstatSync(staged).uid === alice!.uid)
  t.same(readdirSync(runDir).sort(), ['.nf-secretsd-node', '.store.json.staged'], 'only the staged name, which Nextflow never reads')
  t.equal(lstatSync(staged).mode & 0o7777, 0o600)
  t.equal(lstatSync(runDir).uid, 0, 'the dir is not handed over yet')
  open()
  const placement = await placing
  t.same(readdirSync(runDir).sort(), ['.nf-secretsd-node', 'store.json'], 'the store and the node marker')
  t.equal(placement.env.NXF_SECRETS_FILE, join(runDir, 'store.json'))
  t.equal(lstatSync(runDir).uid, alice!.uid, 'handed over after the store is in place')

  // The intent failed: what was prepared is discarded and the intent's error comes back.
  const other = runOf(alice!, 'R0000000000005')
  const failed = Object.assign(new Error('disk full'), { code: 'NFS_ERR_STORAGE' })
  const refused = Promise.reject(failed)
  refused.catch(() => {}) // the manager does the same: the target awaits it later
  await t.rejects(target.provision(other, secrets({ TOKEN: 'CANARY-staged' }), { ready: refused }), { code: 'NFS_ERR_STORAGE' })
  t.notOk(existsSync(join(runsRoot, 'alice', other.runId)), 'no run dir is left')
})

t.test('sweep removes terminal and unknown runs only', async t => {
  const top = testRoot(t)
  const runsRoot = join(top, 'runs')
  const target = createHpcTarget({ runsRoot, privileged: true, logger: pino({ level: 'silent' }) })
  const ids = { R0000000000010: 'live', R0000000000011: 'terminal', R0000000000012: 'unknown' } as const
  for (const id of Object.keys(ids)) await target.provision(runOf(alice!, id), secrets({ TOKEN: 'v' }))
  mkdirSync(join(runsRoot, 'alice', 'not-a-run-id'))
  const removed = await target.sweep(id => ids[id as keyof typeof ids] ?? 'unknown')
  t.equal(removed, 2)
  t.same(readdirSync(join(runsRoot, 'alice')).sort(), ['R0000000000010', 'not-a-run-id'])
})

t.test('a runs root shared by two targets (two nodes): a sweep removes only its own unknown runs', async t => {
  const top = testRoot(t)
  const runsRoot = join(top, 'runs')
  const a = createHpcTarget({ runsRoot, privileged: true, nodeId: 'node-a', host: 'a', logger: pino({ level: 'silent' }) })
  const b = createHpcTarget({ runsRoot, privileged: true, nodeId: 'node-b', host: 'b', logger: pino({ level: 'silent' }) })
  await a.provision(runOf(alice!, 'R000000000000A'), secrets({ TOKEN: 'v' }))
  await b.provision(runOf(alice!, 'R000000000000B'), secrets({ TOKEN: 'v' }))
  // Neither ledger knows the other's run: both are 'unknown' to each.
  t.equal(await b.sweep(() => 'unknown'), 1, 'B removes its own')
  t.same(readdirSync(join(runsRoot, 'alice')), ['R000000000000A'], 'and not A\'s (the architecture review\'s repro)')
  t.equal(await a.sweep(id => id === 'R000000000000A' ? 'live' : 'unknown'), 0)
  t.equal(await b.sweep(() => 'terminal'), 1, 'a run known to be over is removed whoever marked it (ids are unique)')
})

// A cluster node gone for good (its name joined the cluster, no live member for hostDeadAfterSeconds: the sweep's
// goneNode) leaves run dirs its ledger rows never named (a crash between the dir and the intent): nobody came back for
// them. A live node sweeps those, by the cluster name in the marker; never a dir of a node that is not gone, nor one
// without a cluster name (a single-node daemon sharing the root, or one marked before 2 Dec).
t.test('a cluster node gone for good: a live node sweeps its unknown run dirs, and only its', async t => {
  const top = testRoot(t)
  const runsRoot = join(top, 'runs')
  const logger = pino({ level: 'silent' })
  const a = createHpcTarget({ runsRoot, privileged: true, nodeId: 'node-a', host: 'a', clusterNode: 'a', logger })
  const b = createHpcTarget({ runsRoot, privileged: true, nodeId: 'node-b', host: 'b', clusterNode: 'b', logger })
  const single = createHpcTarget({ runsRoot, privileged: true, nodeId: 'node-s', host: 's', logger })
  await b.provision(runOf(alice!, 'R00000000000B1'), secrets({ TOKEN: 'v' }))
  await single.provision(runOf(alice!, 'R00000000000S1'), secrets({ TOKEN: 'v' }))
  t.equal(await a.sweep(() => 'unknown', { goneNode: n => n === 'c' }), 0, 'b is not gone: its dir stays')
  t.equal(await a.sweep(id => id === 'R00000000000B1' ? 'live' : 'unknown', { goneNode: n => n === 'b' }), 0, 'nor a live run of a gone node')
  // What a crash of b between making a run dir and its rename leaves: the marked `.new` dir.
  const half = join(runsRoot, 'alice', '.R00000000000B2.node-b.new')
  mkdirSync(half, { mode: 0o700 })
  await writeRunMarker(half, 'node-b', 'b', null, undefined, 'b')
  t.equal(await a.sweep(() => 'unknown', { goneNode: n => n === 'c' }), 0, 'b is not gone: its half-made dir stays')
  t.equal(await a.sweep(() => 'unknown', { goneNode: n => n === 'b' }), 2, 'b gone for good: a sweeps its unknown run dir and its half-made one')
  t.same(readdirSync(join(runsRoot, 'alice')), ['R00000000000S1'], 'the single-node daemon\'s dir stays')
  t.equal(await a.sweep(() => 'unknown', { goneNode: () => true }), 0, 'whatever goneNode says: its marker names no cluster node')
})

t.test('a revoke removes the half-made dir a crash left between the intent and the rename, and only its own node\'s', async t => {
  const top = testRoot(t)
  const runsRoot = join(top, 'runs')
  const a = createHpcTarget({ runsRoot, privileged: true, nodeId: 'node-a', host: 'a', logger: pino({ level: 'silent' }) })
  await a.provision(runOf(alice!, 'R000000000000C'), secrets({ TOKEN: 'v' }))
  const userDir = join(runsRoot, 'alice')
  // What a SIGKILL right after the intent leaves (the runs-crash e2e test found it left on disk after the restart).
  mkdirSync(join(userDir, '.R000000000000D.node-a.new'), { mode: 0o700 })
  writeFileSync(join(userDir, '.R000000000000D.node-a.new', '.store.json.staged'), 'CANARY-half', { mode: 0o600 })
  mkdirSync(join(userDir, '.R000000000000D.node-b.new'), { mode: 0o700 })
  await a.revoke(runOf(alice!, 'R000000000000D'))
  t.same(readdirSync(userDir).sort(), ['.R000000000000D.node-b.new', 'R000000000000C'], 'node-a\'s half-made dir is gone; node-b\'s and the live run stay')
})

t.test('parseRunMarker', async t => {
  const cases: Array<[string, string | null]> = [
    ['{"node":"0123abcd","host":"login1"}\n', '0123abcd'],
    ['{"node":""}', null],
    ['{"node":7}', null],
    ['', null],
    ['garbage', null]
  ]
  for (const [text, want] of cases) t.equal(parseRunMarker(text), want, JSON.stringify(text))
})

t.test('status: usable, with a warning off a shared filesystem; unusable on an unsafe root', async t => {
  const top = testRoot(t)
  const good = createHpcTarget({ runsRoot: join(top, 'runs'), privileged: true, logger: pino({ level: 'silent' }) })
  const st = await good.status()
  t.equal(st.usable, true)
  // /tmp is not on a shared filesystem on this machine or in CI
  t.same(st.warnings?.map(w => w.code), ['NFS_WARN_RUNS_ROOT_NOT_SHARED'])
  mkdirSync(join(top, 'open'), { mode: 0o777 })
  chmodSync(join(top, 'open'), 0o777)
  const bad = createHpcTarget({ runsRoot: join(top, 'open'), privileged: true, logger: pino({ level: 'silent' }) })
  t.equal((await bad.status()).usable, false)
})

t.test('status explains a runs root that resolves to a path with a space, and one users cannot reach', async t => {
  const top = testRoot(t)
  // The configured path is clean (the config check passes it); a symlink leads where Nextflow's wrapper would split.
  mkdirSync(join(top, 'scratch space', 'runs'), { recursive: true, mode: 0o755 })
  chmodSync(join(top, 'scratch space'), 0o755)
  symlinkSync(join(top, 'scratch space'), join(top, 'scratch'))
  const spaced = createHpcTarget({ runsRoot: join(top, 'scratch', 'runs'), privileged: true, logger: pino({ level: 'silent' }) })
  const st = await spaced.status()
  t.equal(st.usable, true)
  t.same(st.warnings?.map(w => w.code).sort(), ['NFS_WARN_RUNS_ROOT_CHARACTERS', 'NFS_WARN_RUNS_ROOT_NOT_SHARED'])
  // A parent left 0700 (made by hand under umask 077): the daemon can use it, users cannot get through it.
  mkdirSync(join(top, 'closed', 'runs'), { recursive: true })
  chmodSync(join(top, 'closed'), 0o700)
  const closed = createHpcTarget({ runsRoot: join(top, 'closed', 'runs'), privileged: true, logger: pino({ level: 'silent' }) })
  const cw = (await closed.status()).warnings ?? []
  t.same(cw.map(w => w.code).sort(), ['NFS_WARN_RUNS_ROOT_MODE', 'NFS_WARN_RUNS_ROOT_NOT_SHARED'])
  t.same(cw.find(w => w.code === 'NFS_WARN_RUNS_ROOT_MODE')?.paths, [join(top, 'closed')], 'the dir to open up')
  t.same(readdirSync(join(top, 'closed', 'runs')), [], 'the hard-link probe left nothing behind')
})

t.test('user mode: same layout and modes with plain calls', async t => {
  const top = testRoot(t)
  const runsRoot = join(top, 'home', '.nf-secretsd', 'runs')
  const target = createHpcTarget({ runsRoot, privileged: false, logger: pino({ level: 'silent' }) })
  const run = runOf({ name: 'root', uid: 0, gid: 0 }, 'R0000000000020')
  const p = await target.provision(run, secrets({ TOKEN: 'a=b' }))
  const store = p.env.NXF_SECRETS_FILE!
  t.equal(store, join(runsRoot, 'root', run.runId, 'store.json'))
  t.equal(readFileSync(store, 'utf8'), '[\n  {\n    "name": "TOKEN",\n    "value": "a\\u003db"\n  }\n]')
  t.equal(lstatSync(store).mode & 0o7777, 0o600)
  t.equal(lstatSync(join(runsRoot, 'root', run.runId)).mode & 0o7777, 0o700)
  writeFileSync(join(runsRoot, 'root', run.runId, '.nf-00000000000000000000000000000000.secrets'), 'x', { mode: 0o600 })
  await target.revoke(run)
  t.same(readdirSync(join(runsRoot, 'root')), [])
})

t.test('the store is staged in the dir before it is renamed into place, and appears only once ready (issue 18)', async t => {
  const root = testRoot(t)
  const making = join(root, '.R.new')
  const runDir = join(root, 'R')
  await makeRunDir(making)
  const content = Buffer.from('[{"name":"A","value":"CANARY-staged"}]')
  const dir = await stageStore(making, content, null)
  t.ok(content.every(b => b === 0), 'the bytes are zeroed once staged')
  t.same(readdirSync(making), ['.store.json.staged'], 'staged under its own name, no store.json yet')
  renameSync(making, runDir)
  // No sleep before an absence: `ready` is a thenable, so the moment the placement awaits it is seen (an await calls a
  // thenable's then), and what the run dir holds then is what was placed before ready. A placement that never
  // awaits it is seen too: it settles with `then` never called.
  let release: () => void = () => {}
  let awaited = false
  let storeWhenAwaited: boolean | null = null
  const ready = {
    then: (resolve: () => void) => {
      awaited = true
      storeWhenAwaited = existsSync(join(runDir, 'store.json'))
      release = resolve
    }
  } as unknown as Promise<void>
  let settledFirst = false
  const placing = placeStagedStore(dir, runDir, null, ready).finally(() => { if (!awaited) settledFirst = true })
  const told = (): boolean => awaited || settledFirst
  await waitFor('the placement to await ready (or settle without it)', told, 10_000, 5)
  t.ok(awaited && !settledFirst, 'the placement waits for ready')
  t.equal(storeWhenAwaited, false, 'not before ready')
  t.notOk(existsSync(join(runDir, 'store.json')), 'nor while ready is pending')
  release()
  t.equal(await placing, join(runDir, 'store.json'))
  await dir.close()
  t.same(readdirSync(runDir), ['store.json'])
  t.equal(readFileSync(join(runDir, 'store.json'), 'utf8'), '[{"name":"A","value":"CANARY-staged"}]')
  t.equal(statSync(join(runDir, 'store.json')).mode & 0o777, 0o600)
})

t.test('provision: while the intent is written the run dir already holds its marker and staged store', async t => {
  const root = testRoot(t)
  const target = createHpcTarget({ runsRoot: root, privileged: false, logger: pino({ level: 'silent' }) })
  t.teardown(async () => { await target.close() })
  let release: () => void = () => {}
  const ready = new Promise<void>(resolve => { release = resolve })
  const run = runOf({ name: process.env.USER ?? 'root', uid: process.getuid!(), gid: process.getgid!() }, 'R000000000000S')
  const placing = target.provision(run, secrets({ API_TOKEN: 'v' }), { ready })
  const userDir = join(root, run.user)
  await waitFor('the staged store in the run dir', () => existsSync(join(userDir, run.runId, '.store.json.staged')), 10_000, 5)
  t.same(readdirSync(userDir), [run.runId], 'no .new dir left while ready is pending')
  t.same(readdirSync(join(userDir, run.runId)).sort(), ['.nf-secretsd-node', '.store.json.staged'])
  release()
  await placing
  t.same(readdirSync(join(userDir, run.runId)).sort(), ['.nf-secretsd-node', 'store.json'])
})
