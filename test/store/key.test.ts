import t from 'tap'
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadKey } from '../../daemon/store/key.js'
import { generateKey, keyId } from '../../daemon/store/crypto.js'
import { sha256File, tempDir } from './helpers.js'
import { whyNotRoot } from '../helpers/requires.js'

t.test('user mode: generated on first start, 0600, state dir untouched, the same key afterwards', async t => {
  const stateDir = tempDir(t)
  const before = statSync(stateDir)
  const first = await loadKey({ mode: 'user', stateDir })
  const file = join(stateDir, 'master.key')
  t.equal(first.source, file)
  t.equal(first.generated, true)
  t.equal(first.key.length, 32)
  t.equal(statSync(file).mode & 0o777, 0o600)
  t.match(readFileSync(file, 'utf8'), /^[A-Za-z0-9+/]{43}=\n$/)
  const after = statSync(stateDir)
  t.equal(after.mode, before.mode)
  t.equal(after.uid, before.uid)
  const again = await loadKey({ mode: 'user', stateDir })
  t.equal(again.generated, false)
  t.ok(again.key.equals(first.key))
})

t.test('user mode: a missing state dir is created 0700', async t => {
  const stateDir = join(tempDir(t), 'a', 'state')
  await loadKey({ mode: 'user', stateDir })
  t.equal(statSync(stateDir).mode & 0o777, 0o700)
})

t.test('hex keys are accepted', async t => {
  const stateDir = tempDir(t)
  const key = generateKey()
  writeFileSync(join(stateDir, 'master.key'), key.toString('hex') + '\n', { mode: 0o600 })
  t.ok((await loadKey({ mode: 'user', stateDir })).key.equals(key))
})

t.test('bad key files are refused with NFS_ERR_KEY and left as they were', async t => {
  const cases: Array<[string, (f: string) => void]> = [
    ['wider mode', f => { writeFileSync(f, generateKey().toString('base64')); chmodSync(f, 0o644) }],
    ['group readable', f => { writeFileSync(f, generateKey().toString('base64')); chmodSync(f, 0o640) }],
    ['wrong length', f => { writeFileSync(f, generateKey().subarray(0, 16).toString('base64'), { mode: 0o600 }) }],
    ['garbage', f => { writeFileSync(f, 'this is not a key at all, just some text', { mode: 0o600 }) }],
    ['raw bytes', f => { writeFileSync(f, generateKey(), { mode: 0o600 }) }],
    ['empty', f => { writeFileSync(f, '', { mode: 0o600 }) }],
    ['owned by another user', f => { writeFileSync(f, generateKey().toString('base64'), { mode: 0o600 }); chownSync(f, 65534, 65534) }]
  ]
  if (whyNotRoot() !== false) cases.pop() // the chown needs root
  for (const [what, make] of cases) {
    const stateDir = tempDir(t)
    const file = join(stateDir, 'master.key')
    make(file)
    const sum = sha256File(file)
    const mode = statSync(file).mode
    await t.rejects(loadKey({ mode: 'user', stateDir }), { code: 'NFS_ERR_KEY' }, what)
    t.equal(sha256File(file), sum, `${what}: unchanged`)
    t.equal(statSync(file).mode, mode, `${what}: mode unchanged`)
  }
})

t.test('a symlink in place of the key is refused', async t => {
  const stateDir = tempDir(t)
  const real = join(tempDir(t), 'real.key')
  writeFileSync(real, generateKey().toString('base64'), { mode: 0o600 })
  symlinkSync(real, join(stateDir, 'master.key'))
  await t.rejects(loadKey({ mode: 'user', stateDir }), { code: 'NFS_ERR_KEY' })
})

t.test('user mode: no new key when a store written under another key exists', async t => {
  const stateDir = tempDir(t)
  writeFileSync(join(stateDir, 'store.json'), JSON.stringify({ format: 1, keyId: keyId(generateKey()), secrets: [], workspaces: [] }), { mode: 0o600 })
  await t.rejects(loadKey({ mode: 'user', stateDir }), { code: 'NFS_ERR_KEY' })
  t.notOk(existsSync(join(stateDir, 'master.key')))
})

t.test('system mode: never generated; credential first, then the key file', async t => {
  const stateDir = tempDir(t)
  const etc = tempDir(t)
  const keyFile = join(etc, 'master.key')
  await t.rejects(loadKey({ mode: 'system', stateDir, keyFile }), { code: 'NFS_ERR_KEY' })
  t.notOk(existsSync(keyFile), 'no key was made')

  const fileKey = generateKey()
  writeFileSync(keyFile, fileKey.toString('base64') + '\n', { mode: 0o600 })
  const creds = tempDir(t)
  const fromFile = await loadKey({ mode: 'system', stateDir, keyFile, credentialsDirectory: creds })
  t.equal(fromFile.source, keyFile, 'an empty credentials dir falls back to the key file')
  t.ok(fromFile.key.equals(fileKey))

  const credKey = generateKey()
  writeFileSync(join(creds, 'master-key'), credKey.toString('base64'), { mode: 0o440 })
  const fromCred = await loadKey({ mode: 'system', stateDir, keyFile, credentialsDirectory: creds })
  t.equal(fromCred.source, join(creds, 'master-key'))
  t.equal(fromCred.keyFile, keyFile)
  t.ok(fromCred.key.equals(credKey))
  chmodSync(join(creds, 'master-key'), 0o444)
  await t.rejects(loadKey({ mode: 'system', stateDir, keyFile, credentialsDirectory: creds }), { code: 'NFS_ERR_KEY' }, 'world-readable credential refused')
})

t.test('system mode default path is /etc/nf-secretsd/master.key', async t => {
  const stateDir = tempDir(t)
  mkdirSync(stateDir, { recursive: true })
  if (existsSync('/etc/nf-secretsd/master.key')) {
    t.comment('a system key exists on this machine; nothing to check')
    return
  }
  const err = await loadKey({ mode: 'system', stateDir }).catch(e => e)
  t.equal(err.code, 'NFS_ERR_KEY')
  t.notOk(existsSync('/etc/nf-secretsd/master.key'))
})
