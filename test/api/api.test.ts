// Every route through app.inject(), and every error code a route can answer with.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { appFixture } from '../helpers/app.js'

type Json = Record<string, unknown>

t.test('health, whoami, status', async t => {
  const f = await appFixture(t)
  t.same((await f.app.inject({ url: '/api/v1/health' })).json(), { status: 'ok' })
  const who = (await f.app.inject({ url: '/api/v1/whoami', headers: f.as('alice') })).json() as Json
  t.equal(who.user, 'alice')
  t.equal(who.admin, false)
  t.same(who.roles, { personal: 'owner' })
  const status = (await f.app.inject({ url: '/api/v1/status' })).json() as Json
  t.equal(status.mode, 'system')
  t.same(status.targets, { memory: { usable: true } })
  t.same(status.runs, {})
})

t.test('secrets: create, list, update, delete, resolve, with events and audit, never a value out', async t => {
  const f = await appFixture(t)
  const canary = 'CANARY-api-value-1'
  const post = (body: Json, user = 'alice'): Promise<{ statusCode: number, body: string, json: () => Json }> =>
    f.app.inject({ method: 'POST', url: '/api/v1/secrets', headers: f.as(user), payload: body })
  const created = await post({ name: 'API_TOKEN', value: canary })
  t.equal(created.statusCode, 201)
  t.equal(created.json().scope, 'user:alice')
  t.equal((await post({ name: 'API_TOKEN', value: 'x' })).json().code, 'NFS_ERR_SECRET_EXISTS')
  const list = await f.app.inject({ url: '/api/v1/secrets', headers: f.as('alice') })
  t.same((list.json() as Json[]).map(s => s.name), ['API_TOKEN'])
  t.same((await f.app.inject({ url: '/api/v1/secrets', headers: f.as('bob') })).json(), [], 'bob does not see alice\'s secrets')
  const upd = await f.app.inject({ method: 'PUT', url: '/api/v1/secrets/API_TOKEN', headers: f.as('alice'), payload: { value: 'CANARY-api-value-2' } })
  t.equal(upd.json().version, 2)
  t.equal((await f.app.inject({ method: 'PUT', url: '/api/v1/secrets/API_TOKEN', headers: f.as('bob'), payload: { value: 'x' } })).json().code, 'NFS_ERR_SECRET_NOT_FOUND', 'bob cannot touch it')
  const resolved = await f.app.inject({ url: '/api/v1/secrets/resolve', headers: f.as('alice') })
  t.same(resolved.json(), [{ name: 'API_TOKEN', source: 'user', scope: 'user:alice' }])
  const del = await f.app.inject({ method: 'DELETE', url: '/api/v1/secrets/API_TOKEN', headers: f.as('alice') })
  t.same(del.json(), { deleted: 'API_TOKEN', scope: 'user:alice' })
  t.equal((await f.app.inject({ method: 'DELETE', url: '/api/v1/secrets/API_TOKEN', headers: f.as('alice') })).json().code, 'NFS_ERR_SECRET_NOT_FOUND')
  t.same(f.events.map(e => e.type), ['secret.created', 'secret.updated', 'secret.deleted'])
  const everything = JSON.stringify(f.events) + created.body + list.body + upd.body + resolved.body + readFileSync(join(f.config.stateDir, 'audit.log'), 'utf8') + readFileSync(join(f.config.stateDir, 'store.json'), 'utf8')
  t.notMatch(everything, 'CANARY-api-value')
})

t.test('workspaces, roles and group mappings', async t => {
  const f = await appFixture(t)
  const req = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, user: string, payload?: Json): Promise<{ statusCode: number, body: string, json: () => Json }> =>
    f.app.inject({ method, url, headers: f.as(user), ...(payload !== undefined ? { payload } : {}) })
  t.equal((await req('POST', '/api/v1/workspaces', 'alice', { name: 'lab' })).json().code, 'NFS_ERR_FORBIDDEN', 'only system admins create')
  t.equal((await req('POST', '/api/v1/workspaces', 'root', { name: 'lab', owner: 'alice' })).statusCode, 201)
  t.equal((await req('POST', '/api/v1/workspaces', 'root', { name: 'lab' })).json().code, 'NFS_ERR_WORKSPACE_EXISTS')
  t.equal((await req('POST', '/api/v1/workspaces', 'root', { name: 'Bad/Name' })).json().code, 'NFS_ERR_INVALID_WORKSPACE')
  t.equal((await req('POST', '/api/v1/workspaces', 'root', { name: 'x', owner: 'nosuchuser' })).json().code, 'NFS_ERR_UNKNOWN_USER')
  t.equal((await req('PUT', '/api/v1/workspaces/lab/members/bob', 'alice', { role: 'view' })).statusCode, 200, 'the owner manages members')
  t.equal((await req('PUT', '/api/v1/workspaces/lab/members/bob', 'alice', { role: 'boss' })).json().code, 'NFS_ERR_INVALID_ROLE')
  t.equal((await req('PUT', '/api/v1/workspaces/lab/members/carol', 'bob', { role: 'owner' })).json().code, 'NFS_ERR_FORBIDDEN', 'a viewer cannot')
  t.equal((await req('POST', '/api/v1/secrets', 'bob', { name: 'WS_KEY', value: 'v', workspace: 'lab' })).json().code, 'NFS_ERR_FORBIDDEN', 'view cannot add')
  t.equal((await req('PUT', '/api/v1/workspaces/lab/members/bob', 'alice', { role: 'maintain' })).statusCode, 200)
  t.equal((await req('POST', '/api/v1/secrets', 'bob', { name: 'WS_KEY', value: 'v', workspace: 'lab' })).statusCode, 201, 'maintain can')
  t.equal((await req('GET', '/api/v1/secrets?workspace=lab', 'carol')).json().code, 'NFS_ERR_FORBIDDEN', 'a non-member cannot list')
  t.equal((await req('PUT', '/api/v1/workspaces/lab/groups/genomics', 'alice', { role: 'launch' })).statusCode, 200)
  t.equal((await req('PUT', '/api/v1/workspaces/lab/groups/nosuchgroup', 'alice', { role: 'launch' })).json().code, 'NFS_ERR_UNKNOWN_USER')
  const ws = (await req('GET', '/api/v1/workspaces/lab', 'bob')).json()
  t.same(ws.members, { alice: 'owner', bob: 'maintain' })
  t.same(ws.groups, { genomics: 'launch' })
  t.equal((await req('GET', '/api/v1/workspaces/lab', 'carol')).json().code, 'NFS_ERR_FORBIDDEN')
  t.same(((await req('GET', '/api/v1/workspaces', 'carol')).json() as unknown as Json[]), [], 'carol sees no workspace')
  t.equal((await req('DELETE', '/api/v1/workspaces/lab/members/nobody', 'alice')).json().code, 'NFS_ERR_MEMBER_NOT_FOUND')
  t.equal((await req('DELETE', '/api/v1/workspaces/lab/members/bob', 'alice')).statusCode, 200)
  t.equal((await req('DELETE', '/api/v1/workspaces/lab/groups/genomics', 'alice')).statusCode, 200)
  t.equal((await req('GET', '/api/v1/workspaces/nope', 'root')).json().code, 'NFS_ERR_WORKSPACE_NOT_FOUND')
  t.equal((await req('DELETE', '/api/v1/workspaces/lab', 'alice')).json().code, 'NFS_ERR_FORBIDDEN')
  t.equal((await req('DELETE', '/api/v1/workspaces/lab', 'root')).statusCode, 200)
  t.equal(f.store.getSecret('workspace:lab', 'WS_KEY'), undefined, 'its secrets went with it')
})

t.test('runs: create, list, show, finish, revoke and their errors', async t => {
  const f = await appFixture(t)
  const launchDir = join(f.dir, 'launch')
  await f.app.inject({ method: 'POST', url: '/api/v1/secrets', headers: f.as('alice'), payload: { name: 'A_B', value: 'v' } })
  const created = await f.app.inject({ method: 'POST', url: '/api/v1/runs', headers: f.as('alice'), payload: { mode: 'run', launchDir } })
  t.equal(created.statusCode, 201)
  const { runId, secrets } = created.json() as { runId: string, secrets: string[] }
  t.same(secrets, ['A_B'])
  t.equal(((await f.app.inject({ url: '/api/v1/runs', headers: f.as('alice') })).json() as Json[]).length, 1)
  t.same((await f.app.inject({ url: '/api/v1/runs', headers: f.as('bob') })).json(), [])
  t.equal((await f.app.inject({ url: `/api/v1/runs/${runId}`, headers: f.as('bob') })).json().code, 'NFS_ERR_RUN_NOT_FOUND')
  t.equal((await f.app.inject({ url: `/api/v1/runs/${runId}`, headers: f.as('alice') })).json().state, 'running')
  const fin = await f.app.inject({ method: 'POST', url: `/api/v1/runs/${runId}/finish`, headers: f.as('alice'), payload: { exitCode: 0 } })
  t.equal(fin.json().state, 'completed')
  t.equal(((await f.app.inject({ url: '/api/v1/runs?all=true', headers: f.as('alice') })).json() as Json[]).length, 1)
  const bad: Array<[Json, string]> = [
    [{ mode: 'arm', launchDir: 'rel' }, 'NFS_ERR_INVALID_PATH'],
    [{ mode: 'arm', launchDir, targets: ['nope'] }, 'NFS_ERR_INVALID_TARGET'],
    [{ mode: 'arm', launchDir, only: ['NOPE'] }, 'NFS_ERR_UNKNOWN_SECRET'],
    [{ mode: 'arm', launchDir, workspace: 'nope' }, 'NFS_ERR_WORKSPACE_NOT_FOUND'],
    [{ mode: 'launch', launchDir }, 'NFS_ERR_BAD_REQUEST'],
    [{ mode: 'fly', launchDir }, 'NFS_ERR_BAD_REQUEST'],
    [{ mode: 'arm', launchDir, ttlSeconds: 'soon' }, 'NFS_ERR_BAD_REQUEST']
  ]
  for (const [payload, code] of bad) {
    t.equal((await f.app.inject({ method: 'POST', url: '/api/v1/runs', headers: f.as('alice'), payload })).json().code, code, JSON.stringify(payload))
  }
  const armed = (await f.app.inject({ method: 'POST', url: '/api/v1/runs', headers: f.as('alice'), payload: { mode: 'arm', launchDir } })).json() as { runId: string }
  t.equal((await f.app.inject({ method: 'DELETE', url: `/api/v1/runs/${armed.runId}`, headers: f.as('bob') })).json().code, 'NFS_ERR_RUN_NOT_FOUND')
  const revoked = await f.app.inject({ method: 'DELETE', url: `/api/v1/runs/${armed.runId}`, headers: f.as('alice') })
  t.equal(revoked.json().state, 'killed')
  t.notOk(f.memory.placed.has(armed.runId))
})

t.test('input errors are coded, bodies are capped, nothing is echoed', async t => {
  const f = await appFixture(t, { api: { bodyLimit: 4096 } })
  const cases: Array<[string, unknown, string, string?]> = [
    ['POST', { name: 'A', value: 'v' }, 'NFS_ERR_INVALID_NAME'],
    ['POST', { name: 'A__B', value: 'v' }, 'NFS_ERR_INVALID_NAME'],
    ['POST', { name: 'AB', value: '' }, 'NFS_ERR_VALUE_SIZE'],
    ['POST', { name: 'AB', value: 'CANARY-echo\n' }, 'NFS_ERR_VALUE_CHARACTER'],
    ['POST', { name: 'AB', value: 'CANARY-echo\u0000' }, 'NFS_ERR_VALUE_ENCODING'],
    ['POST', { name: 'AB', value: 42 }, 'NFS_ERR_BAD_REQUEST'],
    ['POST', { name: 'AB', value: 'v', extra: 1 }, 'NFS_ERR_BAD_REQUEST'],
    ['POST', { name: 'AB', value: 'x'.repeat(5000) }, 'NFS_ERR_BODY_TOO_LARGE'],
    ['POST', '{"name":"AB","value":"CANARY-echo', 'NFS_ERR_BAD_REQUEST', 'application/json'],
    ['POST', 'name=AB', 'NFS_ERR_BAD_REQUEST', 'text/plain']
  ]
  for (const [method, payload, code, type] of cases) {
    const res = await f.app.inject({
      method: method as 'POST',
      url: '/api/v1/secrets',
      payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
      headers: { 'content-type': type ?? 'application/json' }
    })
    const body = res.json() as Json
    t.equal(body.code, code, `${String(payload).slice(0, 40)} -> ${code}`)
    t.same(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode'])
    t.notMatch(res.body, 'CANARY-echo', 'the value is not echoed')
  }
  const nf = await f.app.inject({ url: '/api/v1/nope' })
  t.equal(nf.statusCode, 404)
  t.equal(nf.json().code, 'NFS_ERR_NOT_FOUND')
  t.equal((await f.app.inject({ url: '/api/v1/secrets/resolve?workspace=nope' })).json().code, 'NFS_ERR_WORKSPACE_NOT_FOUND')
  t.equal((await f.app.inject({ url: '/api/v1/secrets?bogus=1' })).json().code, 'NFS_ERR_BAD_REQUEST')
})

t.test('a refused peer and an internal error keep the error shape', async t => {
  const f = await appFixture(t)
  const refused = await f.app.inject({ url: '/api/v1/whoami', headers: { 'x-test-user': 'mallory' } })
  t.equal(refused.statusCode, 500)
  t.equal(refused.json().code, 'NFS_ERR_INTERNAL')
  t.notMatch(refused.body, 'stack')
  // The answer names the request so that an admin can find its log line (which has the cause; the answer does not).
  const logged = f.logs.filter(l => l.code === 'NFS_ERR_INTERNAL' && typeof l.reqId === 'string' && refused.json().message.includes(`request ${l.reqId as string})`))
  t.equal(logged.length, 1, 'exactly one error log line carries the request id the answer names')
})

t.test('If-Match on PUT and DELETE /secrets/:name: a stale version is NFS_ERR_CONFLICT and changes nothing', async t => {
  const f = await appFixture(t)
  const put = (value: string, ifMatch?: string): Promise<{ statusCode: number, json: () => Json }> =>
    f.app.inject({ method: 'PUT', url: '/api/v1/secrets/DB_PASS', headers: { ...f.as('alice'), ...(ifMatch !== undefined ? { 'if-match': ifMatch } : {}) }, payload: { value } })
  await f.app.inject({ method: 'POST', url: '/api/v1/secrets', headers: f.as('alice'), payload: { name: 'DB_PASS', value: 'one' } })
  t.equal((await put('two', '"1"')).json().version, 2, 'the version read: written')
  const stale = await put('three', '1')
  t.equal(stale.statusCode, 409)
  t.equal(stale.json().code, 'NFS_ERR_CONFLICT')
  t.equal((await put('three', 'W/"2"')).json().version, 3, 'a weak tag names the same version')
  t.equal((await put('four', 'soon')).json().code, 'NFS_ERR_BAD_REQUEST')
  const del = await f.app.inject({ method: 'DELETE', url: '/api/v1/secrets/DB_PASS', headers: { ...f.as('alice'), 'if-match': '2' } })
  t.equal(del.json().code, 'NFS_ERR_CONFLICT')
  const list = (await f.app.inject({ url: '/api/v1/secrets', headers: f.as('alice') })).json() as Json[]
  t.same(list.map(s => [s.name, s.version]), [['DB_PASS', 3]], 'refused writes left the secret as it was')
  t.same(f.events.map(e => e.type), ['secret.created', 'secret.updated', 'secret.updated'], 'no event for a refused write')
})
