// `secrets import --from-nextflow` and `--shred` attacked by bob against alice, on a system-mode daemon with real users.
// The CLI reads and shreds as its caller, so the kernel already keeps bob out of alice's 0600 store; what is checked
// here is what the kernel would let through: a store of alice's left readable, a symlink to it, and alice's files in a
// store dir both can write (her export file writable by bob, a symlink to a file of hers). Nothing of alice's is read
// into bob's secrets, and nothing of hers is zeroed or removed; bob's own store is imported and shredded.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { chmodSync, chownSync, existsSync, lchownSync, lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { requireUsers } from '../helpers/requires.js'
import { startTestDaemon, tempDir } from '../helpers/daemon.js'
import { errorCode, json, runCli, type RunOptions, type RunResult } from '../helpers/cli.js'
import { storedValue } from '../helpers/store-peek.js'

t.setTimeout(300_000)
const [alice, bob] = requireUsers(t, ['alice', 'bob'])
const dir = tempDir(t)
const keyFile = join(dir, 'master.key')
writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
const d = await startTestDaemon(t, { mode: 'system', dir, config: { keyFile } })
const CANARY = `canary-import-${randomBytes(6).toString('hex')}`

function as (user: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return runCli(args, { user, cwd: '/', ...opts, env: { NF_SECRETS_SOCKET: d.socket, ...opts.env } })
}
/** A file of `u`'s with `text` and `mode` (set explicitly). */
function fileOf (u: { uid: number, gid: number }, path: string, text: string, mode: number): string {
  writeFileSync(path, text)
  chmodSync(path, mode)
  chownSync(path, u.uid, u.gid)
  return path
}
function dirOf (u: { uid: number, gid: number }, path: string, mode: number): string {
  mkdirSync(path, { recursive: true })
  chmodSync(path, mode)
  chownSync(path, u.uid, u.gid)
  return path
}
const store = (entries: Record<string, string>): string => JSON.stringify(Object.entries(entries).map(([name, value]) => ({ name, value })), null, 2)

t.test('bob points the import at alice\'s store: nothing of it is read', async t => {
  // Left readable by mistake (Nextflow itself would refuse it), in a dir bob can reach.
  const secretsDir = dirOf(alice!, join(dir, 'alice', '.nextflow', 'secrets'), 0o755)
  chmodSync(join(dir, 'alice', '.nextflow'), 0o755)
  chmodSync(join(dir, 'alice'), 0o755)
  const aliceStore = fileOf(alice!, join(secretsDir, 'store.json'), store({ ALICE_KEY: CANARY }), 0o644)
  const direct = await as('bob', ['secrets', 'import', '--from-nextflow', aliceStore])
  t.equal(direct.code, 4, direct.stderr)
  t.equal(errorCode(direct.stderr), 'NFS_ERR_FORBIDDEN')

  const bobDir = dirOf(bob!, join(dir, 'bob', 'secrets'), 0o700)
  const link = join(bobDir, 'store.json')
  symlinkSync(aliceStore, link)
  lchownSync(link, bob!.uid, bob!.gid)
  const viaLink = await as('bob', ['secrets', 'import', '--from-nextflow', link, '--shred'])
  t.equal(errorCode(viaLink.stderr), 'NFS_ERR_INVALID_PATH', viaLink.stderr)
  t.equal(storedValue(d.stateDir, 'user:bob', 'ALICE_KEY', keyFile), null, 'nothing of alice\'s reached bob\'s secrets')
  t.equal(readFileSync(aliceStore, 'utf8'), store({ ALICE_KEY: CANARY }), 'alice\'s store is untouched')
  t.ok(lstatSync(link).isSymbolicLink())
  t.notMatch(direct.stderr + viaLink.stderr + d.log(), CANARY)
})

t.test('--shred in a store dir alice can write too: bob\'s plaintext goes, nothing of alice\'s', async t => {
  const shared = dirOf(bob!, join(dir, 'shared', 'secrets'), 0o777)
  const bobStore = fileOf(bob!, join(shared, 'store.json'), store({ BOB_KEY: 'bob-value' }), 0o600)
  const bobEnv = fileOf(bob!, join(shared, `.nf-${'b'.repeat(32)}.secrets`), 'export BOB_KEY="bob-value"\n', 0o600)
  // alice's export file, writable by bob; and a symlink of bob's to another file of hers.
  const aliceEnv = fileOf(alice!, join(shared, `.nf-${'a'.repeat(32)}.secrets`), `export ALICE_KEY="${CANARY}"\n`, 0o666)
  const aliceOther = fileOf(alice!, join(dir, 'alice', 'notes.txt'), 'alice keeps this', 0o666)
  const link = join(shared, `.nf-${'c'.repeat(32)}.secrets`)
  symlinkSync(aliceOther, link)
  lchownSync(link, bob!.uid, bob!.gid)

  const r = await as('bob', ['secrets', 'import', '--from-nextflow', bobStore, '--shred', '--json'])
  t.equal(r.code, 0, r.stderr)
  t.same(json<{ shredded: string[] }>(r.stdout).shredded, [bobStore, bobEnv], 'only bob\'s own files')
  t.equal(storedValue(d.stateDir, 'user:bob', 'BOB_KEY', keyFile), 'bob-value')
  t.notOk(existsSync(bobStore) || existsSync(bobEnv), 'bob\'s plaintext is gone')
  t.equal(readFileSync(aliceEnv, 'utf8'), `export ALICE_KEY="${CANARY}"\n`, 'alice\'s export file: not zeroed, not removed')
  t.equal(readFileSync(aliceOther, 'utf8'), 'alice keeps this', 'nothing written through the symlink')
  t.ok(lstatSync(link).isSymbolicLink(), 'the symlink is left')
  t.notMatch(r.stdout + r.stderr + d.log(), CANARY)
})
