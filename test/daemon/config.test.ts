import t from 'tap'
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { configErrors, defaults, loadConfig, resolveMode, unsafeRunsRootCharacter, userSocketPath, type Environment } from '../../daemon/config.js'

function env (over: Partial<Environment> = {}): Environment {
  return { uid: 1000, home: '/home/alice', env: {}, ...over }
}

function tmp (): string {
  return mkdtempSync(join(tmpdir(), 'nfs-config-'))
}

t.test('mode: root means system, the flag wins', async t => {
  t.equal(resolveMode({}, env({ uid: 0 })), 'system')
  t.equal(resolveMode({}, env()), 'user')
  t.equal(resolveMode({ mode: 'user' }, env({ uid: 0 })), 'user')
})

t.test('user-mode defaults follow XDG', async t => {
  const d = defaults('user', env({ env: { XDG_RUNTIME_DIR: '/run/user/1000', XDG_STATE_HOME: '/home/alice/.st' } }))
  t.equal(d.socket, '/run/user/1000/nf-secretsd/api.sock')
  t.equal(d.stateDir, '/home/alice/.st/nf-secretsd')
  t.equal(d.hpc.runsRoot, '/home/alice/.nf-secretsd/runs')
  t.equal(userSocketPath({ home: '/home/alice', env: {} }), '/home/alice/.nf-secretsd/api.sock')
  const s = defaults('system', env({ uid: 0 }))
  t.equal(s.socket, '/run/nf-secretsd/api.sock')
  t.equal(s.stateDir, '/var/lib/nf-secretsd')
  t.equal(s.hpc.runsRoot, '/var/lib/nf-secretsd/runs')
  t.same(configErrors(d), [])
  t.same(configErrors(s), [])
})

t.test('a file and flags override, and the result is frozen', async t => {
  const dir = tmp()
  const file = join(dir, 'config.json')
  writeFileSync(file, JSON.stringify({ logLevel: 'debug', runs: { defaultTtlSeconds: 60 }, watch: [{ root: '/data' }] }))
  const c = await loadConfig({ config: file, socket: '/tmp/x.sock' }, env())
  t.equal(c.logLevel, 'debug')
  t.equal(c.runs.defaultTtlSeconds, 60)
  t.equal(c.runs.retentionDays, 30, 'untouched defaults stay')
  t.equal(c.socket, '/tmp/x.sock')
  t.same(c.watch[0], { root: '/data', depth: 3, poll: false, intervalMs: 1000 })
  t.equal(c.configFile, file)
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.runs))
})

t.test('every error is listed at once and the file is untouched', async t => {
  const dir = tmp()
  const file = join(dir, 'config.json')
  const text = JSON.stringify({ logLevel: 'loud', stateDir: 'relative/dir', runs: { defaultTtlSeconds: -1 }, bogus: true })
  writeFileSync(file, text)
  const err = await loadConfig({ config: file }, env()).then(() => null, (e: unknown) => e as { code: string, message: string })
  t.equal(err?.code, 'NFS_ERR_CONFIG')
  for (const path of ['/logLevel', '/runs/defaultTtlSeconds', '/bogus']) t.match(err?.message, path)
  t.equal(readFileSync(file, 'utf8'), text)
  // Semantic checks run once the shape is right.
  writeFileSync(file, JSON.stringify({ stateDir: 'relative', hpc: { runsRoot: 'also/relative' } }))
  const err2 = await loadConfig({ config: file }, env()).then(() => null, (e: unknown) => e as { code: string, message: string })
  t.equal(err2?.code, 'NFS_ERR_CONFIG')
  t.match(err2?.message, '/stateDir')
  t.match(err2?.message, '/hpc/runsRoot')
})

t.test('a runs root a shell would split or expand is refused (SPEC 11)', async t => {
  const bad: Array<[string, string]> = [
    ['/shared/my runs', 'whitespace (U+0020)'], ['/shared/a\tb', 'whitespace (U+0009)'], ['/shared/\u00a0x', 'whitespace (U+00A0)'],
    ['/shared/$HOME', '"$"'], ['/shared/a`b', '"`"'], ["/shared/a'b", '"\'"'], ['/shared/a"b', '"""'], ['/shared/a\\b', '"\\"'],
    ['/shared/*', '"*"'], ['/shared/a?', '"?"'], ['/shared/[ab]', '"["'], ['/shared/a;b', '";"'], ['/shared/a&b', '"&"'],
    ['/shared/a|b', '"|"'], ['/shared/<a>', '"<"'], ['/shared/(a)', '"("']
  ]
  for (const [root, what] of bad) t.equal(unsafeRunsRootCharacter(root), what, JSON.stringify(root))
  for (const root of ['/shared/nf-secretsd/runs', '/scratch/runs_2026.12/a+b@c=d,e', '/home/alice/.nf-secretsd/runs', '/données/runs']) {
    t.equal(unsafeRunsRootCharacter(root), null, root)
  }
  const dir = tmp()
  const file = join(dir, 'config.json')
  const text = JSON.stringify({ hpc: { runsRoot: '/shared/my runs' } })
  writeFileSync(file, text)
  const err = await loadConfig({ config: file }, env()).then(() => null, (e: unknown) => e as { code: string, message: string })
  t.equal(err?.code, 'NFS_ERR_CONFIG')
  t.match(err?.message, '/hpc/runsRoot')
  t.equal(readFileSync(file, 'utf8'), text, 'the file is left as it was')
})

t.test('broken JSON, a missing named file, a non-object', async t => {
  const dir = tmp()
  const file = join(dir, 'config.json')
  writeFileSync(file, '{ "logLevel": ')
  t.equal((await loadConfig({ config: file }, env()).catch((e: { code: string }) => e) as { code: string }).code, 'NFS_ERR_CONFIG')
  t.equal((await loadConfig({ config: join(dir, 'nope.json') }, env()).catch((e: { code: string }) => e) as { code: string }).code, 'NFS_ERR_CONFIG')
  writeFileSync(file, '[1,2]')
  t.equal((await loadConfig({ config: file }, env()).catch((e: { code: string }) => e) as { code: string }).code, 'NFS_ERR_CONFIG')
  // No file at the default place is fine: the embedded defaults apply.
  const c = await loadConfig({}, env({ env: { XDG_CONFIG_HOME: dir + '/none' } }))
  t.equal(c.configFile, null)
})

t.test('the cluster section: defaults, the node name from the flag or the host, system mode only, every error at once', async t => {
  const dir = tmp()
  const file = join(dir, 'config.json')
  writeFileSync(file, JSON.stringify({ cluster: { etcd: { endpoints: ['http://127.0.0.1:2379'] } } }))
  const c = await loadConfig({ config: file, mode: 'system', nodeName: 'login7' }, env({ uid: 0 }))
  t.same(c.cluster, { nodeName: 'login7', etcd: { endpoints: ['http://127.0.0.1:2379'], prefix: '/nf-secretsd/v1/', caFile: null, certFile: null, keyFile: null }, leaseTtlSeconds: 15, hostDeadAfterSeconds: 300 })
  t.match((await loadConfig({ config: file, mode: 'system' }, env({ uid: 0 }))).cluster?.nodeName, /^[A-Za-z0-9]/, 'the host name by default')
  const userMode = await loadConfig({ config: file }, env()).then(() => null, (e: unknown) => e as { code: string, message: string })
  t.equal(userMode?.code, 'NFS_ERR_CONFIG')
  t.match(userMode?.message, '/cluster: cluster mode is system mode only')
  writeFileSync(file, JSON.stringify({ cluster: { nodeName: 'bad name', etcd: { endpoints: [], certFile: 'rel.pem' }, leaseTtlSeconds: 30, hostDeadAfterSeconds: 10 } }))
  const err = await loadConfig({ config: file, mode: 'system' }, env({ uid: 0 })).then(() => null, (e: unknown) => e as { code: string, message: string })
  t.equal(err?.code, 'NFS_ERR_CONFIG')
  for (const path of ['/cluster/nodeName', '/cluster/etcd/endpoints']) t.match(err?.message, path)
  writeFileSync(file, JSON.stringify({ cluster: { etcd: { endpoints: ['http://e:2379'], certFile: 'rel.pem' }, leaseTtlSeconds: 30, hostDeadAfterSeconds: 10 } }))
  const err2 = await loadConfig({ config: file, mode: 'system' }, env({ uid: 0 })).then(() => null, (e: unknown) => e as { code: string, message: string })
  for (const path of ['/cluster/etcd/certFile: must be an absolute path', '/cluster/etcd: certFile and keyFile go together', '/cluster/hostDeadAfterSeconds']) t.match(err2?.message, path)
  const noCluster = await loadConfig({ nodeName: 'x', mode: 'system' }, env({ uid: 0 })).then(() => null, (e: unknown) => e as { code: string })
  t.equal(noCluster?.code, 'NFS_ERR_CONFIG', '--node-name without a cluster section')
})

t.test('a per-user runs root: {home} only at the start counts as absolute; {user} anywhere in an absolute path', async t => {
  const s = defaults('system', env({ uid: 0 }))
  const cases: Array<[string, boolean]> = [
    ['{home}/.nf-secretsd/runs', true],
    ['/scratch/{user}/.nf-secretsd', true],
    ['runs/{home}', false],
    ['{user}/runs', false],
    ['{home}', false]
  ]
  for (const [runsRoot, ok] of cases) {
    const errors = configErrors({ ...s, hpc: { runsRoot } })
    t.equal(errors.length === 0, ok, `${runsRoot}: ${errors.join('; ')}`)
  }
})
