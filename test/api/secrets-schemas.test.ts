// The response schemas of the secrets routes write the same bytes JSON.stringify wrote before them, and nothing a
// record holds beyond its schema; the body cache is a bounded LRU keyed on the store revision.
import t from 'tap'
import Fastify from 'fastify'
import { BodyCache, etagMatches, etagOf } from '../../daemon/api/body-cache.js'
import { ResolvedList, SecretList } from '../../daemon/contract/secrets.js'
import { resolveSecrets } from '../../daemon/rules/resolve.js'
import { appFixture } from '../helpers/app.js'

t.test('list and resolution bodies equal JSON.stringify of the same objects', async t => {
  const f = await appFixture(t)
  const post = async (user: string, body: Record<string, unknown>): Promise<void> => {
    t.equal((await f.app.inject({ method: 'POST', url: '/api/v1/secrets', headers: f.as(user), payload: body })).statusCode, 201)
  }
  t.equal((await f.app.inject({ method: 'POST', url: '/api/v1/workspaces', headers: f.as('root'), payload: { name: 'lab', owner: 'alice' } })).statusCode, 201)
  for (let i = 0; i < 30; i++) await post('alice', { name: `W_${i}`, value: `v${i}`, workspace: 'lab' })
  for (const name of ['W_3', 'MINE_ONLY', 'a_lower']) await post('alice', { name, value: 'x' })
  t.equal((await f.app.inject({ method: 'PUT', url: '/api/v1/secrets/W_7', headers: f.as('alice'), payload: { value: 'y', workspace: 'lab' } })).statusCode, 200)
  await f.store.markUsed([{ scope: 'workspace:lab', name: 'W_1' }, { scope: 'user:alice', name: 'W_3' }], '2031-05-06T07:08:09.010Z')

  const cases: Array<[string, string]> = [
    ['/api/v1/secrets?workspace=lab', JSON.stringify(f.store.listSecrets(['user:alice', 'workspace:lab']))],
    ['/api/v1/secrets', JSON.stringify(f.store.listSecrets(['user:alice', 'workspace:lab']))],
    ['/api/v1/secrets?workspace=personal', JSON.stringify(f.store.listSecrets(['user:alice']))],
    ['/api/v1/secrets/resolve?workspace=lab', JSON.stringify(resolveSecrets(f.store.listSecrets(['user:alice']), f.store.listSecrets(['workspace:lab'])))],
    ['/api/v1/secrets/resolve', JSON.stringify(resolveSecrets(f.store.listSecrets(['user:alice']), []))]
  ]
  for (const [url, expected] of cases) {
    const res = await f.app.inject({ url, headers: f.as('alice') })
    t.equal(res.statusCode, 200, url)
    t.equal(res.body, expected, `${url}: the same bytes`)
  }
  t.match(cases[0]![1], '"lastUsed":"2031-05-06T07:08:09.010Z"', 'the sample holds a lastUsed')
  t.match(cases[0]![1], '"version":2', 'and an updated secret')
})

t.test('a field outside the schema never reaches the body', async t => {
  const app = Fastify({ logger: false })
  t.teardown(async () => await app.close())
  const meta = { name: 'A_B', scope: 'user:alice', createdAt: 'c', createdBy: 'alice', updatedAt: 'u', updatedBy: 'alice', lastUsed: null, version: 1 }
  app.get('/list', { schema: { response: { 200: SecretList } } }, async () => [{ ...meta, sealed: { ct: 'CANARY-sealed' }, value: 'CANARY-value' }])
  app.get('/resolve', { schema: { response: { 200: ResolvedList } } }, async () => [{ name: 'A_B', source: 'user', scope: 'user:alice', value: 'CANARY-value' }])
  const list = await app.inject({ url: '/list' })
  t.same(list.json(), [meta])
  t.notMatch(list.body, 'CANARY')
  const resolved = await app.inject({ url: '/resolve' })
  t.same(resolved.json(), [{ name: 'A_B', source: 'user', scope: 'user:alice' }])
  t.notMatch(resolved.body, 'CANARY')
})

t.test('the body cache: hits per revision, refills when stale, evicts the least recently used', async t => {
  const cache = new BodyCache(2)
  let built = 0
  const fill = (text: string) => () => { built++; return text }
  const a = cache.get('a', 1, fill('["a"]'))
  t.equal(a.body.toString(), '["a"]')
  t.equal(a.etag, etagOf(Buffer.from('["a"]')))
  t.equal(cache.get('a', 1, fill('["not used"]')), a, 'a hit at the same revision')
  t.equal(built, 1)
  t.equal(cache.get('a', 2, fill('["a2"]')).body.toString(), '["a2"]', 'a stale entry is rebuilt')
  cache.get('b', 2, fill('["b"]'))
  cache.get('a', 2, fill('["unused"]'))
  cache.get('c', 2, fill('["c"]'))
  t.same(cache.stats(), { entries: 2, fills: 4 })
  t.equal(cache.get('a', 2, fill('["unused"]')).body.toString(), '["a2"]', 'a, used last, was kept')
  t.equal(cache.get('b', 2, fill('["b again"]')).body.toString(), '["b again"]', 'b, used least recently, was evicted')
  t.equal(built, 5)
  t.throws(() => new BodyCache(0), RangeError)
})

t.test('If-None-Match matching', async t => {
  const tag = '"abc"'
  const table: Array<[string | undefined, boolean]> = [
    [undefined, false], ['', false], ['"abc"', true], ['W/"abc"', true], ['"x", "abc"', true], ['"x",W/"abc"', true],
    ['*', true], ['"abcd"', false], ['abc', false], ['"x"', false]
  ]
  for (const [header, want] of table) t.equal(etagMatches(header, tag), want, String(header))
})
