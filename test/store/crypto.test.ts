import t from 'tap'
import { base64Length, generateKey, isSealed, keyId, open, seal } from '../../daemon/store/crypto.js'
import { SecretValue } from '../../daemon/secret-value.js'

const key = generateKey()

t.test('round trip, including multi-byte UTF-8', async t => {
  for (const v of ['s3cr3t', 'ünïcødé ✓ 秘密', 'x'.repeat(65536)]) {
    const sealed = seal(key, 'user:alice', 'TOKEN', new SecretValue(v))
    t.equal(open(key, 'user:alice', 'TOKEN', sealed).reveal(), v)
    t.notOk(JSON.stringify(sealed).includes(v.slice(0, 16)), 'the sealed form does not hold the value')
  }
})

t.test('a fresh nonce per write: the same value twice gives different ciphertexts', async t => {
  const a = seal(key, 'user:alice', 'TOKEN', new SecretValue('same'))
  const b = seal(key, 'user:alice', 'TOKEN', new SecretValue('same'))
  t.not(a.nonce, b.nonce)
  t.not(a.data, b.data)
  t.equal(Buffer.from(a.nonce, 'base64').length, 12)
})

t.test('associated data: a ciphertext moved to another scope or name fails with NFS_ERR_KEY', async t => {
  const sealed = seal(key, 'workspace:genomics', 'AWS_KEY', new SecretValue('v'))
  t.throws(() => open(key, 'workspace:genomics', 'OTHER', sealed), { code: 'NFS_ERR_KEY' })
  t.throws(() => open(key, 'user:mallory', 'AWS_KEY', sealed), { code: 'NFS_ERR_KEY' })
  t.throws(() => open(key, 'workspace:genomic', 'AWS_KEY', sealed), { code: 'NFS_ERR_KEY' })
})

t.test('a wrong key or altered bytes fail with NFS_ERR_KEY, naming no value', async t => {
  const sealed = seal(key, 'user:alice', 'TOKEN', new SecretValue('canary-7f3a'))
  const err = (() => { try { open(generateKey(), 'user:alice', 'TOKEN', sealed) } catch (e) { return e as Error & { code: string } } })()
  t.equal(err?.code, 'NFS_ERR_KEY')
  t.notMatch(err?.message ?? '', /canary/)
  const data = Buffer.from(sealed.data, 'base64')
  data[0] = (data[0] ?? 0) ^ 1
  t.throws(() => open(key, 'user:alice', 'TOKEN', { ...sealed, data: data.toString('base64') }), { code: 'NFS_ERR_KEY' })
  t.throws(() => open(key, 'user:alice', 'TOKEN', { ...sealed, tag: 'AAAA' }), { code: 'NFS_ERR_KEY' })
  t.throws(() => seal(Buffer.alloc(16), 'user:alice', 'TOKEN', new SecretValue('v')), { code: 'NFS_ERR_KEY' })
})

t.test('keyId is stable per key, differs between keys, and does not contain the key', async t => {
  const other = generateKey()
  t.equal(keyId(key), keyId(Buffer.from(key)))
  t.not(keyId(key), keyId(other))
  t.match(keyId(key), /^[0-9a-f]{16}$/)
  t.notOk(key.toString('hex').includes(keyId(key)))
})

t.test('base64Length is what Buffer.from decodes, for every string isSealed lets through; isSealed keeps its answers', async t => {
  // Every string of up to 6 characters over an alphabet with each kind of character, '=' included; plus real shapes.
  const alphabet = ['A', 'z', '0', '+', '/', '=']
  let strings = ['']
  const all: string[] = ['']
  for (let len = 1; len <= 6; len++) {
    strings = strings.flatMap(s => alphabet.map(c => s + c))
    for (const s of strings) all.push(s)
  }
  for (const n of [11, 12, 13, 15, 16, 17]) for (const take of [-2, -1, 0]) all.push(Buffer.alloc(n, 7).toString('base64').slice(0, take === 0 ? undefined : take))
  let checked = 0
  for (const s of all) {
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s)) continue
    checked++
    if (base64Length(s) !== Buffer.from(s, 'base64').length) t.fail(`base64Length(${JSON.stringify(s)}) = ${base64Length(s)}, Buffer.from gives ${Buffer.from(s, 'base64').length}`)
  }
  t.ok(checked > 1000, `${checked} strings checked`)
  const sealed = seal(generateKey(), 'user:alice', 'TOKEN', new SecretValue('v'))
  t.ok(isSealed(sealed))
  t.notOk(isSealed({ ...sealed, nonce: sealed.nonce.slice(0, -1) }), 'a short nonce')
  t.notOk(isSealed({ ...sealed, tag: sealed.tag.replace(/==$/, '') + 'AAAA' }), 'a long tag')
  t.notOk(isSealed({ ...sealed, data: sealed.data + '!' }), 'not base64')
  t.notOk(isSealed({ ...sealed, tag: 16 }), 'not a string')
})
