// System mode as a site runs it: the packed tarball installed with `npm install -g`, the shipped units (not their
// settings repeated here) under a real systemd booted in a container, and docs/install.md's journey through them as
// alice (owner, admin), bob (maintain) and carol (no role). What the kernel shows of the running daemon is compared
// with what the unit file says: its user, UMask=, capability bounding set, NoNewPrivileges=, the read-only system
// with its ReadWritePaths=, socket activation and the key from LoadCredential=.
// Run by `npm run test:container` (CI's `.ci/run` does); root only, see test/helpers/systemd-container.ts.
import t from 'tap'
import { join } from 'node:path'
import { bootContainer, packForContainer, ROOT, skipReason, type Container } from '../helpers/systemd-container.js'
import { capNames, one, parseUnit } from '../helpers/unit-file.js'
import { eventually, installAsDocsSay, journal, json, mainPid, nfs, runReaches, RUNS_ROOT, sha256, shOut, UNIT_DIR } from './site.js'

const unit = parseUnit(join(ROOT, 'systemd', 'nf-secretsd.service'))
const CANARY = { alice: 'canary-alice-9f2c', bob: 'canary-bob-41d7' }
const A_HOME = '/home/alice'
const reason = skipReason()

interface ReadStore { path: string, uid: number, mode: number, me: number, hashes: Record<string, string> }

if (reason !== null) {
  t.test('system mode under systemd', { skip: reason }, async () => {})
} else {
  let c!: Container
  // Where the time goes, for CI's log (never asserted on).
  const phases: string[] = []
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const start = performance.now()
    try {
      return await fn()
    } finally {
      phases.push(`${name} ${((performance.now() - start) / 1000).toFixed(1)} s`)
    }
  }
  t.before(async () => {
    const packed = await timed('pack', packForContainer)
    try {
      c = await timed('boot', () => bootContainer([packed.tarball]))
      await timed('install', () => installAsDocsSay(c, packed.tarball))
    } finally {
      packed.remove()
    }
  })
  t.teardown(async () => { await c?.down() })

  t.test('the installed units are the shipped ones, and the kernel sees the daemon as they say', async t => {
    t.comment(`set-up: ${phases.join(', ')}`)
    t.equal(await shOut(c, `cmp "$(npm root -g)/nf-secretsd/systemd/nf-secretsd.service" ${UNIT_DIR}/nf-secretsd.service && echo same`), 'same')
    const pid = await mainPid(c)
    t.ok(pid > 0, 'the service runs')
    const status = Object.fromEntries((await shOut(c, `cat /proc/${pid}/status`)).split('\n').map(l => l.split(/:\s*/, 2) as [string, string]))
    t.equal(status.Uid?.split(/\s+/)[0], '0', 'User= (none: root)')
    t.equal(status.Umask, one(unit, 'Service', 'UMask'), 'UMask=')
    t.equal(status.NoNewPrivs, one(unit, 'Service', 'NoNewPrivileges') === 'yes' ? '1' : '0', 'NoNewPrivileges=')
    t.equal(status.Seccomp, '2', 'SystemCallFilter= is a seccomp filter')
    const bounding = (unit.get('Service')?.get('CapabilityBoundingSet') ?? []).join(' ').split(/\s+/).filter(Boolean).sort()
    t.same(capNames(status.CapBnd ?? ''), bounding, 'CapabilityBoundingSet=')
    // The daemon's mount namespace (entered as root with every capability: only the mounts answer).
    const writable = async (p: string): Promise<boolean> =>
      (await c.sh(`nsenter -t ${pid} -m -- sh -c 'touch ${p}/.nfs-probe && rm ${p}/.nfs-probe'`)).code === 0
    t.notOk(await writable('/usr/bin'), 'ProtectSystem=strict: the system is read-only')
    t.notOk(await writable('/home/alice'), 'ProtectHome=read-only')
    for (const p of ['/var/lib/nf-secretsd', RUNS_ROOT]) t.ok(await writable(p), `ReadWritePaths: ${p} writable`)
    // No PrivateTmp=: what a user puts in /tmp, the daemon sees.
    await c.sh('echo x > /tmp/seen-by-daemon', { user: 'alice' })
    t.equal(await shOut(c, `cat /proc/${pid}/root/tmp/seen-by-daemon`), 'x', 'the daemon\'s /tmp is the users\'')
  })

  t.test('the key is the LoadCredential= one; the socket is the socket unit\'s', async t => {
    const environ = (await shOut(c, `tr '\\0' '\\n' < /proc/${await mainPid(c)}/environ`)).split('\n')
    t.ok(environ.includes('LISTEN_FDNAMES=api'), 'started by socket activation')
    const credDir = environ.find(e => e.startsWith('CREDENTIALS_DIRECTORY='))?.slice('CREDENTIALS_DIRECTORY='.length)
    t.ok(credDir, 'systemd passed a credentials dir')
    // The line is written asynchronously (pino) and reaches the journal a moment later: wait for it (one read raced
    // it once in CI, 3 Dec).
    let loaded: Record<string, unknown> | undefined
    await eventually(async () => {
      loaded = (await journal(c)).filter(l => typeof l.source === 'string').at(-1)
      return loaded !== undefined
    })
    t.equal(loaded?.source, `${credDir ?? ''}/master-key`, 'the key was read from the credential')
    t.equal(await shOut(c, 'stat -c %a /run/nf-secretsd/api.sock'), '666')
    // Activation: with the service stopped, the socket unit keeps the socket and the first client starts it again.
    const inode = await shOut(c, 'stat -c %i /run/nf-secretsd/api.sock')
    await c.sh('systemctl stop nf-secretsd.service')
    t.equal(await mainPid(c), 0, 'stopped')
    t.equal((await nfs(c, 'alice', A_HOME, ['status'])).code, 0, 'a client is served')
    t.ok(await mainPid(c) > 0, 'the socket started the service')
    t.equal(await shOut(c, 'stat -c %i /run/nf-secretsd/api.sock'), inode, 'the same socket')
  })

  t.test('install.md 5: a workspace, its members and secrets', async t => {
    t.equal((await nfs(c, 'alice', A_HOME, ['workspaces', 'create', 'genomics', '--owner', 'alice'])).code, 0, 'alice (adminGroup) creates')
    t.equal((await nfs(c, 'alice', A_HOME, ['workspaces', 'group-set', 'genomics', 'genomics', 'launch'])).code, 0)
    t.equal((await nfs(c, 'alice', A_HOME, ['workspaces', 'member-set', 'genomics', 'bob', 'maintain'])).code, 0)
    t.equal((await nfs(c, 'alice', A_HOME, ['secrets', 'add', '-w', 'genomics', 'NCBI_API_KEY'], CANARY.alice)).code, 0)
    t.equal((await nfs(c, 'bob', '/home/bob', ['secrets', 'add', '-w', 'genomics', 'BOB_KEY'], CANARY.bob)).code, 0, 'bob (maintain) adds')
    const names = json<Array<{ name: string }>>(await nfs(c, 'alice', A_HOME, ['--json', 'secrets', 'list', '-w', 'genomics']))?.map(s => s.name)
    t.same(names?.sort(), ['BOB_KEY', 'NCBI_API_KEY'])
    t.equal((await nfs(c, 'carol', '/home/carol', ['secrets', 'list', '-w', 'genomics'])).code, 4, 'carol has no role')
    t.equal((await nfs(c, 'carol', '/home/carol', ['run', '-w', 'genomics', '--', 'true'])).code, 4)
    t.equal((await nfs(c, 'alice', A_HOME, ['whoami'])).code, 0)
  })

  const want = { NCBI_API_KEY: sha256(CANARY.alice), BOB_KEY: sha256(CANARY.bob) }
  for (const [user, dir] of [['alice', `${A_HOME}/proj`], ['alice', '/tmp/alice-run'], ['alice', '/var/tmp/alice-run'], ['bob', '/home/bob/proj']] as const) {
    t.test(`install.md 6: ${user} runs from ${dir}, and the store reads as Nextflow reads it`, async t => {
      await c.sh(`mkdir -p ${dir}`, { user })
      const r = await nfs(c, user, dir, ['run', '-w', 'genomics', '--', 'nxf-read-store'])
      t.equal(r.code, 0, 'the command\'s own status: the store is the user\'s, 0600')
      const read = JSON.parse(await shOut(c, `cat ${dir}/nxf-read.json`)) as ReadStore
      t.same(read.hashes, want, 'every value, as stored')
      t.ok(read.path.startsWith(`${RUNS_ROOT}/`), 'under the configured runs root')
      t.equal(await shOut(c, `test -e ${read.path} || echo gone`), 'gone', 'removed when the run ended')
    })
  }

  t.test('arm; bob can neither read nor touch alice\'s run; revoke removes the store', async t => {
    await c.sh(`mkdir -p ${A_HOME}/armed`, { user: 'alice' })
    const armed = json<{ runId: string, env: Record<string, string> }>(await nfs(c, 'alice', `${A_HOME}/armed`, ['arm', '-w', 'genomics', '--format', 'json']))
    const store = armed?.env.NXF_SECRETS_FILE ?? ''
    t.ok(store !== '' && armed !== undefined, 'armed')
    t.equal((await c.sh(`test -r ${store}`, { user: 'alice' })).code, 0, 'alice can read her store')
    t.not((await c.sh(`cat ${store}`, { user: 'bob' })).code, 0, 'bob cannot')
    t.equal((await nfs(c, 'bob', '/', ['runs', 'show', armed?.runId ?? ''])).code, 3, 'bob does not see alice\'s run')
    t.equal((await nfs(c, 'bob', '/', ['runs', 'revoke', armed?.runId ?? ''])).code, 3)
    t.equal((await nfs(c, 'alice', '/', ['runs', 'revoke', armed?.runId ?? ''])).code, 0)
    t.equal(await shOut(c, `test -e ${store} || echo gone`), 'gone')
  })

  // What Nextflow writes when it runs: its files in the launch dir, its home dir, a temp file; and what the command
  // is: outside the daemon's sandbox (no NoNewPrivs, the user's slice), with nothing open but its stdio.
  const NEXTFLOW_LIKE = [
    'set -e', 'mkdir -p work/ab/cdef .nextflow "$HOME/.nextflow/assets"', 'echo x > work/ab/cdef/.command.sh',
    'echo h > .nextflow/history', 'echo l > .nextflow.log', 'echo a > "$HOME/.nextflow/assets/from-launch"',
    't=$(mktemp /tmp/nxf.XXXXXX) && echo "$t" > tmpfile', 'nxf-read-store',
    'grep NoNewPrivs /proc/self/status > nnp', 'cat /proc/self/cgroup > cgroup', 'ls /proc/self/fd > fds',
    'printf %s "$1" > dollar', 'read -r line && printf %s "$line" > typed', 'exit 7'
  ].join('\n')
  for (const dir of [`${A_HOME}/launched`, '/tmp/alice-launch']) {
    t.test(`launch from ${dir}: the command gets alice's view of the system`, async t => {
      await c.sh(`mkdir -p ${dir}`, { user: 'alice' })
      const r = await nfs(c, 'alice', dir, ['launch', '-w', 'genomics', '--', 'sh', '-c', NEXTFLOW_LIKE, 'nxf', '$HOME${USER}$$'], 'typed-in\n')
      t.equal(r.code, 7, 'the launch ends with the command\'s status')
      const owner = (p: string): Promise<string> => shOut(c, `stat -c %U ${p}`)
      for (const p of ['work/ab/cdef/.command.sh', '.nextflow/history', '.nextflow.log']) t.equal(await owner(`${dir}/${p}`), 'alice', p)
      t.equal(await owner(`${A_HOME}/.nextflow/assets/from-launch`), 'alice', 'home writable')
      t.equal(await owner(await shOut(c, `cat ${dir}/tmpfile`)), 'alice', 'the machine\'s /tmp')
      t.same((JSON.parse(await shOut(c, `cat ${dir}/nxf-read.json`)) as ReadStore).hashes, want, 'the run\'s store')
      t.equal(await shOut(c, `cat ${dir}/nnp`), 'NoNewPrivs:\t0', 'not under the daemon\'s NoNewPrivileges=')
      t.match(await shOut(c, `cat ${dir}/cgroup`), /user-\d+\.slice\/nf-secrets-launch-/, 'a transient unit in alice\'s slice')
      t.same((await shOut(c, `cat ${dir}/fds`)).split('\n'), ['0', '1', '2', '3'], 'stdio and ls\'s own dir fd, nothing else')
      t.equal(await shOut(c, `cat ${dir}/dollar`), '$HOME${USER}$$', 'argv as given: systemd expanded nothing')
      t.equal(await shOut(c, `cat ${dir}/typed`), 'typed-in', 'keystrokes reach it through the terminal')
    })
  }

  t.test('a launched command keeps alice\'s environment from bob, bob cannot stop it, runs revoke kills it', async t => {
    const TOKEN = 'canary-token-5e1a'
    const r = await c.sh(`cd ${A_HOME} && MY_TOKEN=${TOKEN} exec nf-secrets launch --detach -w genomics -- sh -c 'echo "$MY_TOKEN" > token-seen; exec sleep 600'`, { user: 'alice' })
    const runId = r.stdout.trim()
    const unitFile = `nf-secrets-launch-${runId}.service`
    t.equal(r.code, 0)
    t.ok(await eventually(async () => await shOut(c, `cat ${A_HOME}/token-seen`) === TOKEN), 'the command has alice\'s environment')
    t.ok(await eventually(async () => await shOut(c, `test -e /var/lib/nf-secretsd/launch/alice/${runId}.env || echo removed`) === 'removed'),
      'its copy in the state dir is removed once the command has started')
    // Where systemd and the kernel could show it: the unit's properties, every argv, the unit's credential.
    const seen = await c.sh(`systemctl show ${unitFile}; ps -eo args; cat /run/credentials/${unitFile}/nfs-env`, { user: 'bob' })
    t.notOk((seen.stdout + seen.stderr).includes(TOKEN), 'bob reads none of it')
    t.not((await c.sh(`systemctl kill ${unitFile}`, { user: 'bob' })).code, 0, 'bob cannot signal it')
    t.equal(await shOut(c, `systemctl is-active ${unitFile}`), 'active')
    t.equal((await nfs(c, 'alice', '/', ['runs', 'revoke', runId])).code, 0)
    const ended = await runReaches(c, 'alice', runId, ['completed', 'failed', 'killed', 'expired'])
    t.equal(ended?.state, 'killed')
    t.not(await shOut(c, `systemctl is-active ${unitFile}`), 'active', 'its unit is gone')
    t.equal((await c.sh('pgrep -u alice -x sleep')).code, 1, 'no sleep left')
  })

  t.test('a restart keeps armed and launched runs; a launched one ends with its status after it', async t => {
    const armed = json<{ runId: string, env: Record<string, string> }>(await nfs(c, 'alice', `${A_HOME}/armed`, ['arm', '-w', 'genomics', '--format', 'json']))
    // Output after the restart, more than a terminal buffers: the command must not block on a terminal nobody reads.
    const script = 'sleep 3; i=0; while [ $i -lt 3000 ]; do echo "line $i after the restart"; i=$((i+1)); done; echo done > after; exit 5'
    const launched = (await nfs(c, 'alice', `${A_HOME}/launched`, ['launch', '--detach', '-w', 'genomics', '--', 'sh', '-c', script])).stdout.trim()
    const before = await mainPid(c)
    t.equal((await c.sh('systemctl restart nf-secretsd.service')).code, 0)
    t.not(await mainPid(c), before, 'a new daemon')
    t.equal((await runReaches(c, 'alice', armed?.runId ?? '', ['armed']))?.state, 'armed', 'the armed run is kept')
    t.equal((await c.sh(`test -r ${armed?.env.NXF_SECRETS_FILE ?? ''}`, { user: 'alice' })).code, 0, 'with its store')
    const ended = await runReaches(c, 'alice', launched, ['completed', 'failed', 'killed', 'expired'])
    if (!t.equal(ended?.exitCode, 5, 'the launched run ends with its command\'s status')) {
      t.comment((await journal(c)).filter(l => l.runId === launched))
    }
    t.equal(await shOut(c, `cat ${A_HOME}/launched/after`), 'done')
    t.equal((await nfs(c, 'alice', '/', ['runs', 'revoke', armed?.runId ?? ''])).code, 0)
  })

  t.test('reload applies the log level and keeps the daemon; a broken config is refused and kept out', async t => {
    const pid = await mainPid(c)
    const config = await shOut(c, 'cat /etc/nf-secretsd/config.json')
    await c.sh(`printf '%s' '${JSON.stringify({ ...JSON.parse(config) as object, logLevel: 'debug' })}' > /etc/nf-secretsd/config.json`)
    t.equal((await c.sh('systemctl reload nf-secretsd.service')).code, 0)
    const reloaded = async (): Promise<boolean> => (await journal(c)).some(l => l.logLevel === 'debug')
    for (let i = 0; i < 50 && !(await reloaded()); i++) await new Promise(resolve => setTimeout(resolve, 100))
    t.ok(await reloaded(), 'the new level is in force')
    await c.sh('echo "{ broken" > /etc/nf-secretsd/config.json && systemctl reload nf-secretsd.service')
    t.equal((await nfs(c, 'alice', A_HOME, ['status'])).code, 0, 'still serving')
    t.equal(await mainPid(c), pid, 'the same daemon throughout')
    await c.sh(`printf '%s' '${config}' > /etc/nf-secretsd/config.json`)
  })

  t.test('systemd-analyze security of the unit as installed', async t => {
    const out = await shOut(c, 'systemd-analyze security --no-pager nf-secretsd.service | tail -1')
    const exposure = Number(/: (\d+(?:\.\d+)?)/.exec(out)?.[1])
    t.ok(exposure <= 3.0, `exposure ${exposure} <= 3.0`)
  })
}
