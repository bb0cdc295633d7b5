// GET /secrets and /secrets/resolve answer cached bodies: every kind of store change must show in the next answer,
// and the access check must run on every request, so a caller who lost access is refused, not served a cached body.
import t, { type Test } from 'tap'
import { appFixture, type AppFixture } from '../helpers/app.js'

type Json = Record<string, unknown>
interface Answer { statusCode: number, body: string, headers: Record<string, unknown>, json: () => any }

const CANARY = 'CANARY-cache-value'

function client (f: AppFixture): {
  req: (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, user: string, payload?: Json, headers?: Record<string, string>) => Promise<Answer>
  list: (user: string, query?: string) => Promise<Answer>
  resolve: (user: string, query?: string) => Promise<Answer>
} {
  const req = async (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, user: string, payload?: Json, headers: Record<string, string> = {}): Promise<Answer> =>
    await f.app.inject({ method, url, headers: { ...f.as(user), ...headers }, ...(payload !== undefined ? { payload } : {}) }) as unknown as Answer
  return {
    req,
    list: async (user, query = '') => await req('GET', `/api/v1/secrets${query}`, user),
    resolve: async (user, query = '') => await req('GET', `/api/v1/secrets/resolve${query}`, user)
  }
}

/** A workspace `lab` owned by alice with bob as a viewer, two workspace secrets and one of alice's own. */
async function labFixture (t: Test): Promise<AppFixture & ReturnType<typeof client>> {
  const f = await appFixture(t)
  const c = client(f)
  t.equal((await c.req('POST', '/api/v1/workspaces', 'root', { name: 'lab', owner: 'alice' })).statusCode, 201)
  t.equal((await c.req('PUT', '/api/v1/workspaces/lab/members/bob', 'alice', { role: 'view' })).statusCode, 200)
  for (const name of ['WS_ONE', 'WS_TWO']) {
    t.equal((await c.req('POST', '/api/v1/secrets', 'alice', { name, value: `${CANARY}-${name}`, workspace: 'lab' })).statusCode, 201)
  }
  t.equal((await c.req('POST', '/api/v1/secrets', 'alice', { name: 'WS_ONE', value: `${CANARY}-mine` })).statusCode, 201)
  return { ...f, ...c }
}

const names = (a: Answer): string[] => (a.json() as Json[]).map(s => `${String(s.scope)}/${String(s.name)}`)

t.test('create, update and delete each show in the next list and resolution', async t => {
  const f = await labFixture(t)
  const before = await f.list('bob', '?workspace=lab')
  t.same(names(before), ['workspace:lab/WS_ONE', 'workspace:lab/WS_TWO'])
  t.same(names(await f.resolve('bob', '?workspace=lab')), ['workspace:lab/WS_ONE', 'workspace:lab/WS_TWO'])

  t.equal((await f.req('POST', '/api/v1/secrets', 'alice', { name: 'WS_THREE', value: `${CANARY}-3`, workspace: 'lab' })).statusCode, 201)
  t.same(names(await f.list('bob', '?workspace=lab')), ['workspace:lab/WS_ONE', 'workspace:lab/WS_THREE', 'workspace:lab/WS_TWO'], 'create')
  t.same(names(await f.resolve('bob', '?workspace=lab')), ['workspace:lab/WS_ONE', 'workspace:lab/WS_THREE', 'workspace:lab/WS_TWO'], 'create (resolve)')

  t.equal((await f.req('PUT', '/api/v1/secrets/WS_TWO', 'alice', { value: `${CANARY}-2b`, workspace: 'lab' })).statusCode, 200)
  const updated = (await f.list('bob', '?workspace=lab')).json() as Json[]
  t.equal(updated.find(s => s.name === 'WS_TWO')?.version, 2, 'update')

  t.equal((await f.req('DELETE', '/api/v1/secrets/WS_ONE?workspace=lab', 'alice')).statusCode, 200)
  t.same(names(await f.list('bob', '?workspace=lab')), ['workspace:lab/WS_THREE', 'workspace:lab/WS_TWO'], 'delete')
  t.same(names(await f.resolve('bob', '?workspace=lab')), ['workspace:lab/WS_THREE', 'workspace:lab/WS_TWO'], 'delete (resolve)')

  // alice's own secret of the same name wins in her resolution, and its removal shows there too.
  const mine = (await f.resolve('alice', '?workspace=lab')).json() as Json[]
  t.same(mine.map(r => `${String(r.name)}:${String(r.source)}`), ['WS_ONE:user', 'WS_THREE:workspace', 'WS_TWO:workspace'])
  t.equal((await f.req('DELETE', '/api/v1/secrets/WS_ONE', 'alice')).statusCode, 200)
  t.same(((await f.resolve('alice', '?workspace=lab')).json() as Json[]).map(r => r.name), ['WS_THREE', 'WS_TWO'])
})

t.test('lastUsed written by markUsed shows in the next list', async t => {
  const f = await labFixture(t)
  const rows = (await f.list('bob', '?workspace=lab')).json() as Json[]
  t.same(rows.map(s => s.lastUsed), [null, null])
  const at = '2030-01-02T03:04:05.000Z'
  await f.store.markUsed([{ scope: 'workspace:lab', name: 'WS_TWO' }], at)
  const after = (await f.list('bob', '?workspace=lab')).json() as Json[]
  t.same(after.map(s => s.lastUsed), [null, at])
})

t.test('a caller who loses access is refused, not served the cached body', async t => {
  const f = await labFixture(t)
  t.equal((await f.list('bob', '?workspace=lab')).statusCode, 200)
  t.equal((await f.resolve('bob', '?workspace=lab')).statusCode, 200)
  t.same(names(await f.list('bob')), ['workspace:lab/WS_ONE', 'workspace:lab/WS_TWO'], 'the unfiltered list holds lab')

  t.equal((await f.req('DELETE', '/api/v1/workspaces/lab/members/bob', 'alice')).statusCode, 200)
  t.equal((await f.list('bob', '?workspace=lab')).json().code, 'NFS_ERR_FORBIDDEN')
  t.equal((await f.resolve('bob', '?workspace=lab')).json().code, 'NFS_ERR_FORBIDDEN')
  t.same(names(await f.list('bob')), [], 'the unfiltered list no longer holds lab')
  // An ETag held from before is no key past the check either.
  t.equal((await f.req('GET', '/api/v1/secrets?workspace=lab', 'bob', undefined, { 'if-none-match': '*' })).json().code, 'NFS_ERR_FORBIDDEN')

  t.equal((await f.req('DELETE', '/api/v1/workspaces/lab', 'root')).statusCode, 200)
  t.equal((await f.list('alice', '?workspace=lab')).json().code, 'NFS_ERR_WORKSPACE_NOT_FOUND', 'a deleted workspace')
  t.equal((await f.resolve('alice', '?workspace=lab')).json().code, 'NFS_ERR_WORKSPACE_NOT_FOUND')
  t.same(names(await f.list('alice')), ['user:alice/WS_ONE'])
})

t.test('a group mapping that grants or drops access shows at once', async t => {
  const f = await labFixture(t)
  // carol is no member; alice is in the Unix group genomics, which a mapping can let in.
  t.same(names(await f.list('carol')), [])
  t.equal((await f.req('POST', '/api/v1/workspaces', 'root', { name: 'core', owner: 'bob' })).statusCode, 201)
  t.equal((await f.req('POST', '/api/v1/secrets', 'bob', { name: 'CORE_KEY', value: `${CANARY}-core`, workspace: 'core' })).statusCode, 201)
  t.equal((await f.list('alice', '?workspace=core')).json().code, 'NFS_ERR_FORBIDDEN')
  t.equal((await f.req('PUT', '/api/v1/workspaces/core/groups/genomics', 'bob', { role: 'view' })).statusCode, 200)
  t.same(names(await f.list('alice', '?workspace=core')), ['user:alice/WS_ONE', 'workspace:core/CORE_KEY'])
  t.equal((await f.req('DELETE', '/api/v1/workspaces/core/groups/genomics', 'bob')).statusCode, 200)
  t.equal((await f.list('alice', '?workspace=core')).json().code, 'NFS_ERR_FORBIDDEN')
})

t.test('ETag and If-None-Match: 304 while unchanged, a new body and tag after a change', async t => {
  const f = await labFixture(t)
  for (const path of ['/api/v1/secrets?workspace=lab', '/api/v1/secrets/resolve?workspace=lab']) {
    const first = await f.req('GET', path, 'bob')
    const etag = String(first.headers.etag)
    t.match(etag, /^"[A-Za-z0-9_-]{27}"$/, `${path} has a strong tag`)
    t.equal(first.headers['content-type'], 'application/json; charset=utf-8')
    const again = await f.req('GET', path, 'bob', undefined, { 'if-none-match': etag })
    t.equal(again.statusCode, 304)
    t.equal(again.body, '')
    t.equal(again.headers.etag, etag)
    t.equal((await f.req('GET', path, 'bob', undefined, { 'if-none-match': `"other", W/${etag}` })).statusCode, 304, 'a list with a weak form')
    t.equal((await f.req('GET', path, 'bob', undefined, { 'if-none-match': '"other"' })).statusCode, 200)
  }
  const etag = String((await f.list('bob', '?workspace=lab')).headers.etag)
  await f.store.markUsed([{ scope: 'workspace:lab', name: 'WS_ONE' }], '2030-01-01T00:00:00.000Z')
  const changed = await f.req('GET', '/api/v1/secrets?workspace=lab', 'bob', undefined, { 'if-none-match': etag })
  t.equal(changed.statusCode, 200)
  t.not(changed.headers.etag, etag)
  // Same store, same scopes, another caller: the same bytes, so the same tag.
  t.equal((await f.list('alice', '?workspace=lab')).headers.etag, (await f.list('alice', '?workspace=lab')).headers.etag)
})

t.test('no value in any body', async t => {
  const f = await labFixture(t)
  await f.store.markUsed([{ scope: 'workspace:lab', name: 'WS_ONE' }], '2030-01-01T00:00:00.000Z')
  let all = ''
  for (const user of ['alice', 'bob', 'carol']) {
    for (const q of ['', '?workspace=lab', '?workspace=personal']) all += (await f.list(user, q)).body + (await f.resolve(user, q)).body
  }
  t.match(all, 'WS_TWO', 'the bodies were read')
  t.notMatch(all, CANARY)
  t.notMatch(all, 'sealed')
})
