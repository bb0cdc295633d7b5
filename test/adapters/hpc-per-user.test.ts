// Per-user runs roots (`{user}`, `{home}`) as root: the file work runs in a child as the user, and another user who
// got there first (a sticky /scratch where bob pre-made /scratch/alice, or a symlink of his) gets nothing of alice's.
import t from 'tap'
import type { Test } from 'tap'
import { chmodSync, chownSync, existsSync, lchownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs'
import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { pino } from 'pino'
import { createHpcTarget } from '../../adapters/hpc.js'
import { expandRunsRoot, isPerUserRoot } from '../../adapters/hpc/per-user-root.js'
import type { TargetRun } from '../../adapters/types.js'
import { SecretValue } from '../../daemon/secret-value.js'
import { ensureBuilt, ROOT } from '../helpers/daemon.js'
import { othersCanReach } from '../helpers/for-others.js'
import { requireUsers } from '../helpers/requires.js'

ensureBuilt() // the child runs dist/adapters/hpc/user-tree.js
// The child runs as alice and bob from this checkout: in a checkout they cannot read (root's 0700 home) it cannot start.
const childUnreachable = othersCanReach(join(ROOT, 'dist', 'adapters', 'hpc', 'user-tree.js')) ? false : 'the checkout is not readable by other users, and the per-user child runs dist/adapters/hpc/user-tree.js as them'
const [alice, bob] = requireUsers(t, ['alice', 'bob', 'carol']) as [{ name: string, uid: number, gid: number }, { name: string, uid: number, gid: number }]
const CANARY = 'pEr-UsEr-' + Math.random().toString(36).slice(2)

function scratch (t: Test): string {
  const top = mkdtempSync('/tmp/nfs-per-user-')
  chmodSync(top, 0o755)
  t.teardown(() => rmSync(top, { recursive: true, force: true }))
  const s = join(top, 'scratch')
  mkdirSync(s)
  chmodSync(s, 0o1777) // like /scratch or /tmp: everyone may make their own dir
  return s
}

const runOf = (u: { name: string, uid: number, gid: number }, runId: string): TargetRun =>
  ({ runId, sessionId: '0b7e9a52-1111-4222-8333-444455556666', user: u.name, uid: u.uid, gid: u.gid, workspace: 'personal', launchDir: '/tmp', host: 'h', names: ['TOKEN'] })
const secrets = (): Map<string, SecretValue> => new Map([['TOKEN', new SecretValue(CANARY)]])

t.test('expandRunsRoot and isPerUserRoot', async t => {
  const cases: Array<[string, string, string, string]> = [
    ['{home}/.nf-secretsd/runs', 'alice', '/home/alice', '/home/alice/.nf-secretsd/runs'],
    ['{home}/.nf-secretsd/runs', 'alice', '/home/alice/', '/home/alice/.nf-secretsd/runs'],
    ['/scratch/{user}/nfs', 'bob', '/home/bob', '/scratch/bob/nfs'],
    ['/x/{user}/{user}', 'c', '', '/x/c/c']
  ]
  for (const [tpl, user, home, want] of cases) t.equal(expandRunsRoot(tpl, user, home), want, tpl)
  t.ok(isPerUserRoot('{home}/r'))
  t.ok(isPerUserRoot('/s/{user}'))
  t.notOk(isPerUserRoot('/shared/nf-secretsd/runs'))
})

t.test('as root, {user} in a sticky scratch: made by alice\'s child, hers, 0700; revoke and sweep as her', { skip: childUnreachable }, async t => {
  const s = scratch(t)
  const target = createHpcTarget({ runsRoot: join(s, '{user}', 'runs'), privileged: true, nodeId: 'n1', knownUsers: () => ['alice'], logger: pino({ level: 'silent' }) })
  const store = (await target.provision(runOf(alice, 'RperUser000001'), secrets())).env.NXF_SECRETS_FILE!
  t.equal(store, join(s, 'alice', 'runs', 'RperUser000001', 'store.json'))
  for (const p of [join(s, 'alice'), join(s, 'alice', 'runs'), join(s, 'alice', 'runs', 'RperUser000001')]) {
    t.same([statSync(p).uid, statSync(p).mode & 0o777], [alice.uid, 0o700], p)
  }
  t.same([statSync(store).uid, statSync(store).mode & 0o777], [alice.uid, 0o600])
  t.same(readdirSync(join(s, 'alice', 'runs', 'RperUser000001')).sort(), ['.nf-secretsd-node', 'store.json'])
  await target.revoke(runOf(alice, 'RperUser000001'))
  t.notOk(existsSync(join(s, 'alice', 'runs', 'RperUser000001')))
  // A leftover of ours (unknown to the ledger) and one of another node.
  await target.provision(runOf(alice, 'RperUser000002'), secrets())
  const other = createHpcTarget({ runsRoot: join(s, '{user}', 'runs'), privileged: true, nodeId: 'n2', logger: pino({ level: 'silent' }) })
  await other.provision(runOf(alice, 'RperUser000003'), secrets())
  t.equal(await target.sweep(() => 'unknown'), 1)
  t.same(readdirSync(join(s, 'alice', 'runs')), ['RperUser000003'], 'the other node\'s run stays')
})

t.test('a root-owned symlink on the way (/home -> /gpfs/home) is followed; the store path is symlink-free', { skip: childUnreachable }, async t => {
  const s = scratch(t)
  mkdirSync(join(s, '..', 'gpfs-home'), { mode: 0o755 })
  chmodSync(join(s, '..', 'gpfs-home'), 0o755)
  symlinkSync(join(s, '..', 'gpfs-home'), join(s, '..', 'home'))
  const target = createHpcTarget({ runsRoot: join(s, '..', 'home', '{user}'), privileged: true, logger: pino({ level: 'silent' }) })
  // alice's "home" under it, as useradd would make it.
  mkdirSync(join(s, '..', 'gpfs-home', 'alice'), { mode: 0o700 })
  chownSync(join(s, '..', 'gpfs-home', 'alice'), alice.uid, alice.gid)
  const store = (await target.provision(runOf(alice, 'RperUserLink01'), secrets())).env.NXF_SECRETS_FILE!
  t.equal(store, join(s, '..', 'gpfs-home', 'alice', 'RperUserLink01', 'store.json'))
  await target.revoke(runOf(alice, 'RperUserLink01'))
  t.same(readdirSync(join(s, '..', 'gpfs-home', 'alice')), [])
})

t.test('attack: bob made /scratch/alice first (his dir, or his symlink): alice\'s provision refuses, bob gets nothing', { skip: childUnreachable }, async t => {
  for (const kind of ['dir', 'open-dir', 'symlink'] as const) {
    const s = scratch(t)
    const bobs = join(s, 'bobs')
    mkdirSync(bobs, { mode: 0o777 })
    chownSync(bobs, bob.uid, bob.gid)
    chmodSync(bobs, 0o777)
    if (kind === 'symlink') {
      symlinkSync(bobs, join(s, 'alice'))
      lchownSync(join(s, 'alice'), bob.uid, bob.gid)
    } else {
      mkdirSync(join(s, 'alice'))
      chownSync(join(s, 'alice'), kind === 'dir' ? bob.uid : alice.uid, bob.gid)
      chmodSync(join(s, 'alice'), 0o777) // as alice's own but writable by others: bob could swap what is inside
    }
    const target = createHpcTarget({ runsRoot: join(s, '{user}', 'runs'), privileged: true, logger: pino({ level: 'silent' }) })
    await t.rejects(target.provision(runOf(alice, 'RperUserAttack'), secrets()), { code: 'NFS_ERR_UNSAFE_PATH' }, kind)
    t.same(readdirSync(bobs), [], `${kind}: nothing written where bob can reach`)
    if (kind !== 'symlink') t.same(readdirSync(join(s, 'alice')), [], `${kind}: nothing made below`)
  }
})

// The value goes to the child on stdin: a separate process scans every argv and environment meanwhile.
const SCANNER = `
const fs = require('node:fs')
const { SECRET } = process.env
let passes = 0, stop = false
const hits = []
process.on('SIGTERM', () => { stop = true })
function scan () {
  for (const d of fs.readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(d) || d === String(process.pid)) continue
    for (const f of ['cmdline', 'environ']) {
      let c
      try { c = fs.readFileSync('/proc/' + d + '/' + f, 'latin1') } catch { continue }
      if (c.includes(SECRET)) hits.push(d + '/' + f)
    }
  }
  passes++
  if (passes === 1) process.stdout.write('ready\\n')
  if (stop) process.stdout.write(JSON.stringify({ passes, hits }) + '\\n')
  else setImmediate(scan)
}
scan()
`

t.test('no value in the argv or environment of any process while children provision and revoke', { skip: childUnreachable }, async t => {
  const s = scratch(t)
  const target = createHpcTarget({ runsRoot: join(s, '{user}', 'runs'), privileged: true, logger: pino({ level: 'silent' }) })
  const scanner = spawn(process.execPath, ['-e', SCANNER], { env: { SECRET: CANARY.split('').reverse().join('') }, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { scanner.kill('SIGKILL') })
  let out = ''
  scanner.stdout.setEncoding('utf8')
  scanner.stdout.on('data', (d: string) => { out += d })
  while (!out.includes('ready')) await new Promise(resolve => setTimeout(resolve, 10))
  for (let i = 0; i < 5; i++) {
    const run = runOf(alice, `RperUserArgv0${i}`)
    await target.provision(run, new Map([['TOKEN', new SecretValue(CANARY.split('').reverse().join(''))]]))
    await target.revoke(run)
  }
  const done = new Promise<void>(resolve => scanner.stdout.on('end', () => resolve()))
  scanner.kill('SIGTERM')
  await done
  const report = JSON.parse(out.split('\n').filter(l => l.startsWith('{'))[0] ?? '{}') as { passes: number, hits: string[] }
  t.ok(report.passes > 3, `scanned /proc ${report.passes} times`)
  t.same(report.hits, [], 'no process carried the value in argv or environment')
})

t.test('a rerun\'s secrets file in a per-user root: its old run dir made again by alice\'s child, removed only by its mark', { skip: childUnreachable }, async t => {
  const s = scratch(t)
  const target = createHpcTarget({ runsRoot: join(s, '{user}', 'runs'), privileged: true, nodeId: 'n1', knownUsers: () => ['alice'], logger: pino({ level: 'silent' }) })
  const old = (await target.provision(runOf(alice, 'RoldRun0000001'), secrets())).env.NXF_SECRETS_FILE!
  await target.revoke(runOf(alice, 'RoldRun0000001'))
  const file = join(dirname(old), `.nf-${'a'.repeat(32)}.secrets`)
  const rerun = { ...runOf(alice, 'RrerunRun00001'), secretsFile: file }
  const placed = await target.provision(rerun, secrets())
  t.same(placed.refs, [{ name: 'TOKEN', ref: file }])
  t.same([statSync(file).uid, statSync(file).mode & 0o777], [alice.uid, 0o600])
  t.same([statSync(join(file, '..')).uid, statSync(join(file, '..')).mode & 0o777], [alice.uid, 0o700])
  // Another run's revoke (the old run's again, or a different rerun's) leaves it; its own removes the dir.
  await target.revoke({ ...runOf(alice, 'RotherRerun001'), secretsFile: file })
  t.ok(existsSync(file), 'not removed by a rerun that did not make it')
  await target.revoke(rerun)
  t.notOk(existsSync(join(file, '..')), 'the run dir made again is gone')

  // Outside the runs root: written as alice, O_EXCL|O_NOFOLLOW; a symlink there is refused and left alone.
  const home = join(s, 'alice', 'nxf')
  mkdirSync(home, { mode: 0o700 })
  chownSync(home, alice.uid, alice.gid)
  const planted = join(home, `.nf-${'b'.repeat(32)}.secrets`)
  symlinkSync('/etc/passwd', planted)
  lchownSync(planted, alice.uid, alice.gid)
  await t.rejects(target.provision({ ...runOf(alice, 'RsymlinkRun001'), secretsFile: planted }, secrets()), { code: 'NFS_ERR_UNSAFE_PATH' })
  await target.revoke({ ...runOf(alice, 'RsymlinkRun001'), secretsFile: planted })
  t.ok(readdirSync(home).includes(`.nf-${'b'.repeat(32)}.secrets`), 'the symlink is left as it was')
})
