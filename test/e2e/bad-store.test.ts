// What the daemon does with broken inputs and with its socket: a corrupt store, a wrong key and a bad config stop it
// with exit 78 naming the file and leave every file byte for byte as it was; check-config's exit codes; a live
// daemon's socket is never taken over, a stale one is replaced, the socket is removed on SIGTERM, and its modes.
import t from 'tap'
import type { Test } from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { existsSync, lstatSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { daemonArgs, daemonPaths, socketGet, startTestDaemon, tempDir } from '../helpers/daemon.js'
import { errorCode, json, runCli, runDaemon } from '../helpers/cli.js'
import { seal } from '../../daemon/store/crypto.js'
import { parseKey } from '../../daemon/store/key.js'
import { sealedStoreText } from '../../daemon/store/store-seal.js'
import type { StoreData } from '../../daemon/store/store-format.js'
import { SecretValue } from '../../daemon/secret-value.js'

t.setTimeout(600_000)

function sha256 (file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex')
}

/** A user-mode daemon that ran once (so store.json and master.key exist with one secret), then stopped. */
async function populatedStateDir (t: Test): Promise<ReturnType<typeof daemonPaths>> {
  const d = await startTestDaemon(t, { mode: 'user' })
  const add = await runCli(['secrets', 'add', 'KEEP_ME'], { input: 'keep-value\n', env: { NF_SECRETS_SOCKET: d.socket } })
  t.equal(add.code, 0, add.stderr)
  t.equal(await d.stop(), 0)
  return d
}

/** Start a daemon on paths that must fail; its exit code and stderr. */
async function startMustFail (p: ReturnType<typeof daemonPaths>, mode: 'user' | 'system' = 'user'): Promise<{ code: number | null, stderr: string }> {
  const r = await runDaemon(daemonArgs(mode, p).slice(1))
  return { code: r.code, stderr: r.stderr }
}

t.test('a corrupt store.json stops the daemon with 78, names the file, and is left untouched', async t => {
  const p = await populatedStateDir(t)
  const store = join(p.stateDir, 'store.json')
  writeFileSync(store, '{"format":1,"keyId":"00","secrets":[{"name":"KEEP_ME"', { mode: 0o600 })
  const before = sha256(store)
  const r = await startMustFail(p)
  t.equal(r.code, 78, r.stderr)
  t.equal(errorCode(r.stderr), 'NFS_ERR_STORE_UNREADABLE')
  t.ok(r.stderr.includes(store), 'the message names the file')
  t.equal(sha256(store), before, 'byte for byte unchanged')
  t.notOk(existsSync(p.socket), 'it never listened')
})

t.test('a big store with one value moved stops the daemon with 78 too (its values are verified in a worker)', async t => {
  // 600 secrets: over VERIFY_ASIDE_MIN, so the values are checked in a worker thread while the ledger loads
  // (verify-aside.ts); the answer must be the same as a check on the daemon's own thread, and come before listening.
  const p = await populatedStateDir(t)
  const store = join(p.stateDir, 'store.json')
  const key = parseKey(readFileSync(join(p.stateDir, 'master.key'), 'utf8'), 'master.key')
  const data = JSON.parse(readFileSync(store, 'utf8')) as StoreData
  const at = new Date().toISOString()
  for (let i = 0; i < 600; i++) {
    const name = `BIG_${i}`
    data.secrets.push({ name, scope: data.secrets[0]!.scope, createdAt: at, createdBy: 'x', updatedAt: at, updatedBy: 'x', lastUsed: null, version: 1, sealed: seal(key, data.secrets[0]!.scope, name, new SecretValue(`v${i}`)) })
  }
  // The 451st value is the 450th's: it decrypts, but not under its own name (moved), deep inside the worker's share.
  data.secrets[451]!.sealed = data.secrets[450]!.sealed
  writeFileSync(store, JSON.stringify(data) + '\n', { mode: 0o600 })
  const before = sha256(store)
  const r = await startMustFail(p)
  t.equal(r.code, 78, r.stderr)
  t.equal(errorCode(r.stderr), 'NFS_ERR_STORE_UNREADABLE')
  t.ok(r.stderr.includes(`${data.secrets[451]!.scope}/BIG_450`), 'the message names the secret that fails')
  t.equal(sha256(store), before, 'byte for byte unchanged')
  t.notOk(existsSync(p.socket), 'it never listened')
})

t.test('a sealed store with a value changed, the seal left or recomputed without the key, stops the start with 78', async t => {
  // The daemon's own writes are sealed (store-seal.ts) and a matching seal skips the values' decryption at start:
  // a change that does not come with a seal made under the key must still be found before the socket listens.
  const p = await populatedStateDir(t)
  const store = join(p.stateDir, 'store.json')
  const written = readFileSync(store)
  t.ok(written.toString('utf8').startsWith('{"seal":"'), 'the daemon sealed its write')
  const data = JSON.parse(written.toString('utf8')) as StoreData & { seal?: string }
  const v = data.secrets[0]!.sealed
  v.data = (v.data[0] === 'A' ? 'B' : 'A') + v.data.slice(1)
  const seal = data.seal!
  delete data.seal
  const rest = JSON.stringify(data).slice(1)
  for (const [what, hex] of [
    ['the seal left as it was', seal],
    ['a seal recomputed without the key', sealedStoreText(data, randomBytes(32)).slice(9, 73)]
  ] as const) {
    writeFileSync(store, `{"seal":"${hex}",${rest}\n`, { mode: 0o600 })
    const before = sha256(store)
    const r = await startMustFail(p)
    t.equal(r.code, 78, `${what}: ${r.stderr}`)
    t.equal(errorCode(r.stderr), 'NFS_ERR_STORE_UNREADABLE', what)
    t.ok(r.stderr.includes(`${data.secrets[0]!.scope}/KEEP_ME`), 'the message names the secret that fails')
    t.equal(sha256(store), before, 'byte for byte unchanged')
    t.notOk(existsSync(p.socket), 'it never listened')
  }
})

t.test('a wrong master.key stops the daemon with 78 and leaves store and key untouched', async t => {
  const p = await populatedStateDir(t)
  const store = join(p.stateDir, 'store.json')
  const key = join(p.stateDir, 'master.key')
  writeFileSync(key, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  const before = [sha256(store), sha256(key)]
  const r = await startMustFail(p)
  t.equal(r.code, 78, r.stderr)
  t.equal(errorCode(r.stderr), 'NFS_ERR_KEY')
  t.ok(r.stderr.includes(store) || r.stderr.includes(key), 'the message names the file')
  t.same([sha256(store), sha256(key)], before)

  writeFileSync(key, 'not a key\n', { mode: 0o600 })
  const garbled = sha256(key)
  const g = await startMustFail(p)
  t.equal(g.code, 78)
  t.equal(errorCode(g.stderr), 'NFS_ERR_KEY')
  t.ok(g.stderr.includes(key), 'names the key file')
  t.same([sha256(store), sha256(key)], [before[0], garbled])
})

t.test('a bad config exits 78 listing every error; check-config exit codes', async t => {
  const dir = tempDir(t)
  const p = daemonPaths(dir, { logLevel: 'loud', runs: { defaultTtlSeconds: -5 }, api: { bodyLimit: 'big' }, surprise: true })
  const bad = await startMustFail(p)
  t.equal(bad.code, 78)
  t.equal(errorCode(bad.stderr), 'NFS_ERR_CONFIG')
  t.ok(bad.stderr.includes(p.configFile), 'names the file')
  for (const path of ['/logLevel', '/runs/defaultTtlSeconds', '/api/bodyLimit']) t.ok(bad.stderr.includes(path), `lists ${path}`)
  t.notOk(existsSync(p.stateDir), 'nothing was created')

  const check = await runDaemon(['check-config', ...daemonArgs('user', p).slice(1)])
  t.equal(check.code, 78)
  t.equal(errorCode(check.stderr), 'NFS_ERR_CONFIG')

  writeFileSync(p.configFile, '{ not json', { mode: 0o600 })
  t.equal((await runDaemon(['check-config', '--config', p.configFile])).code, 78, 'not JSON')
  t.equal((await runDaemon(['check-config', '--config', join(dir, 'absent.json')])).code, 78, 'a named config that is missing')

  const good = daemonPaths(dir, { logLevel: 'warn' })
  const ok = await runDaemon(['check-config', ...daemonArgs('user', good).slice(1)])
  t.equal(ok.code, 0, ok.stderr)
  t.match(json(ok.stdout), { ok: true, mode: 'user', file: good.configFile, config: { logLevel: 'warn', stateDir: good.stateDir } })
  t.match(json(ok.stdout), { key: { present: false } }, 'a first start makes the user key')
  t.notOk(existsSync(join(good.stateDir, 'master.key')), 'check-config generated no key')

  // The key (issue 17): missing, or readable by others, fails with NFS_ERR_KEY and exit 78, as the start would.
  const { mkdirSync, chmodSync } = await import('node:fs')
  mkdirSync(join(dir, 'keyed'))
  mkdirSync(join(dir, 'sys'))
  const keyed = daemonPaths(join(dir, 'keyed'), { logLevel: 'warn' })
  mkdirSync(keyed.stateDir, { recursive: true, mode: 0o700 })
  writeFileSync(join(keyed.stateDir, 'master.key'), `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  t.equal((await runDaemon(['check-config', ...daemonArgs('user', keyed).slice(1)])).code, 0, 'a good key')
  chmodSync(join(keyed.stateDir, 'master.key'), 0o644)
  const wide = await runDaemon(['check-config', ...daemonArgs('user', keyed).slice(1)])
  t.equal(wide.code, 78, 'a key others can read')
  t.equal(errorCode(wide.stderr), 'NFS_ERR_KEY')
  const sys = daemonPaths(join(dir, 'sys'), { logLevel: 'warn', keyFile: join(dir, 'sys', 'absent.key') })
  const missing = await runDaemon(['check-config', ...daemonArgs('user', sys).slice(1), '--mode', 'system'])
  t.equal(missing.code, 78, 'a system key file that does not exist')
  t.equal(errorCode(missing.stderr), 'NFS_ERR_KEY')
  t.equal((await runDaemon(['check-config', '--mode', 'sideways'])).code, 2, 'a bad flag is a usage error')
  t.equal((await runDaemon(['no-such-command'])).code, 2)
})

t.test('a live daemon\'s socket is never taken over', async t => {
  const first = await startTestDaemon(t, { mode: 'user' })
  const other = daemonPaths(tempDir(t))
  const r = await runDaemon(['--mode', 'user', '--state-dir', other.stateDir, '--socket', first.socket, '--config', other.configFile])
  t.equal(r.code, 78, r.stderr)
  t.equal(errorCode(r.stderr), 'NFS_ERR_SOCKET_IN_USE')
  t.equal((await socketGet(first.socket, '/api/v1/health')).status, 200, 'the first daemon still answers')
  const status = await runCli(['status', '--json'], { env: { NF_SECRETS_SOCKET: first.socket } })
  t.equal(json<{ pid: number }>(status.stdout).pid, first.process.pid, 'and it is still the first one')
})

t.test('a stale socket file is replaced; the socket is removed on SIGTERM', async t => {
  const dir = tempDir(t)
  const socket = join(dir, 'sock', 'api.sock')
  spawnSync('install', ['-d', '-m', '700', dirname(socket)])
  // A socket file with no listener: what a daemon killed with SIGKILL leaves behind.
  spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(socket)}, () => process.exit(0))`])
  t.ok(lstatSync(socket).isSocket(), 'a stale socket is there')
  const d = await startTestDaemon(t, { mode: 'user', dir })
  t.equal((await socketGet(d.socket, '/api/v1/health')).status, 200)
  t.equal(await d.stop(), 0)
  t.notOk(existsSync(socket), 'removed on SIGTERM')
})

t.test('socket modes: user 0600 in a 0700 dir; system 0666 in a 0755 dir', async t => {
  const user = await startTestDaemon(t, { mode: 'user' })
  t.equal(statSync(user.socket).mode & 0o777, 0o600)
  t.equal(statSync(dirname(user.socket)).mode & 0o777, 0o700)
  const dir = tempDir(t)
  const keyFile = join(dir, 'master.key')
  writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
  const system = await startTestDaemon(t, { mode: 'system', dir, config: { keyFile } })
  t.equal(statSync(system.socket).mode & 0o777, 0o666)
  t.equal(statSync(dirname(system.socket)).mode & 0o777, 0o755)
  t.equal(statSync(system.stateDir).mode & 0o777, 0o700, 'the state dir stays private')
})
