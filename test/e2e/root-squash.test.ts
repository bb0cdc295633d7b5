// Root-squashed storage (SPEC 11): a root daemon without CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER and CAP_CHOWN
// is root as an NFS server with root_squash sees it: it cannot enter, create in or chown anything in a user's 0700
// tree. With the runs root in each user's home (`{user}` here; `{home}` in production), every file there is made and
// removed by a child running as that user: alice and bob each get their store, can read it, cannot read the other's,
// and revoking removes each run dir.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { requireUsers } from '../helpers/requires.js'
import { startTestDaemon, tempDir } from '../helpers/daemon.js'
import { runCli } from '../helpers/cli.js'

t.setTimeout(300_000)

const users = requireUsers(t, ['alice', 'bob', 'carol'])
const [alice, bob] = users as [{ name: string, uid: number, gid: number }, { name: string, uid: number, gid: number }]
const DROP = ['dac_override', 'dac_read_search', 'fowner', 'chown']
// Bits of CAP_CHOWN (0), CAP_DAC_OVERRIDE (1), CAP_DAC_READ_SEARCH (2), CAP_FOWNER (3).
const DROPPED_MASK = 0xfn

t.test('a daemon without DAC and ownership capabilities provisions and removes in users\' 0700 homes', async t => {
  const dir = tempDir(t)
  const keyFile = join(dir, 'master.key')
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  const homes = join(dir, 'homes')
  mkdirSync(homes, { mode: 0o755 })
  chmodSync(homes, 0o755)
  for (const u of [alice, bob]) {
    mkdirSync(join(homes, u.name), { mode: 0o700 })
    chownSync(join(homes, u.name), u.uid, u.gid)
    chmodSync(join(homes, u.name), 0o700)
  }
  const runsRoot = join(homes, '{user}', '.nf-secretsd', 'runs')
  const d = await startTestDaemon(t, { mode: 'system', dir, dropCaps: DROP, config: { keyFile, hpc: { runsRoot } } })
  const status = readFileSync(`/proc/${d.process.pid}/status`, 'utf8')
  const capEff = BigInt('0x' + /^CapEff:\s*([0-9a-f]+)$/m.exec(status)![1]!)
  t.equal(capEff & DROPPED_MASK, 0n, 'the daemon runs without those four capabilities')
  t.not(capEff & (1n << 7n), 0n, 'and still with CAP_SETUID, to start children as users')

  const env = { NF_SECRETS_SOCKET: d.socket }
  const seen: Record<string, string> = {}
  for (const u of [alice, bob]) {
    const canary = `sq-${u.name}-${randomBytes(6).toString('hex')}`
    t.equal((await runCli(['secrets', 'add', 'TOKEN'], { user: u.name, env, input: canary })).code, 0)
    const work = join(dir, `${u.name}-work`)
    mkdirSync(work, { mode: 0o755 })
    chownSync(work, u.uid, u.gid)
    const r = await runCli(['arm', '--format', 'json'], { user: u.name, env, cwd: work })
    t.equal(r.code, 0, r.stderr)
    const run = JSON.parse(r.stdout) as { runId: string, env: { NXF_SECRETS_FILE: string } }
    const store = run.env.NXF_SECRETS_FILE
    t.equal(store, join(homes, u.name, '.nf-secretsd', 'runs', run.runId, 'store.json'))
    // What Nextflow does: the user reads the store.
    const read = spawnSync('runuser', ['-u', u.name, '--', 'cat', store], { encoding: 'utf8' })
    t.match(read.stdout, canary, `${u.name} reads her store`)
    const st = statSync(store)
    t.same([st.uid, st.mode & 0o777], [u.uid, 0o600], 'the store is the user\'s, 0600')
    t.same([statSync(dirname(store)).uid, statSync(dirname(store)).mode & 0o777], [u.uid, 0o700], 'the run dir too, 0700')
    seen[u.name] = run.runId
    t.teardown(() => { spawnSync('runuser', ['-u', u.name, '--', 'rm', '-rf', join(homes, u.name, '.nf-secretsd')]) })
  }
  const bobReads = spawnSync('runuser', ['-u', 'bob', '--', 'cat', join(homes, 'alice', '.nf-secretsd', 'runs', seen.alice!, 'store.json')], { encoding: 'utf8' })
  t.not(bobReads.status, 0, 'bob cannot read alice\'s store')

  for (const u of [alice, bob]) {
    const r = await runCli(['runs', 'revoke', seen[u.name]!], { user: u.name, env })
    t.equal(r.code, 0, r.stderr)
    t.notOk(existsSync(join(homes, u.name, '.nf-secretsd', 'runs', seen[u.name]!)), `${u.name}'s run dir is gone`)
    t.same(readdirSync(join(homes, u.name, '.nf-secretsd', 'runs')), [])
  }
})
