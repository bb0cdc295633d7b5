// POST /secrets/import: checked in full before the first write (a bad entry anywhere: nothing written), an existing
// name skipped unless overwrite, the right to write the scope enforced, no value in any reply.
import t from 'tap'
import { appFixture } from '../helpers/app.js'

t.test('all or nothing, skip or overwrite, rights', async t => {
  const f = await appFixture(t)
  const imp = async (user: string, payload: unknown): Promise<{ statusCode: number, json: () => any, body: string }> =>
    await f.app.inject({ method: 'POST', url: '/api/v1/secrets/import', headers: f.as(user), payload: payload as object })
  const names = (user: string): string[] => f.store.listSecrets([`user:${user}`]).map(s => s.name).sort()

  for (const [entry, code] of [[{ name: 'A', value: 'v' }, 'NFS_ERR_INVALID_NAME'], [{ name: 'AB', value: 'a"b' }, 'NFS_ERR_VALUE_CHARACTER'], [{ name: 'OK_1', value: 'dup' }, 'NFS_ERR_BAD_REQUEST']] as const) {
    const r = await imp('alice', { secrets: [{ name: 'OK_1', value: 'CANARY-imp' }, entry] })
    t.equal(r.json().code, code)
    t.notMatch(r.body, 'CANARY-imp')
    t.same(names('alice'), [], 'nothing written')
  }
  await f.app.inject({ method: 'POST', url: '/api/v1/secrets', headers: f.as('alice'), payload: { name: 'OLD_ONE', value: 'old' } })
  const r = await imp('alice', { secrets: [{ name: 'OLD_ONE', value: 'new' }, { name: 'NEW_ONE', value: 'n' }] })
  t.equal(r.statusCode, 200)
  t.same(r.json(), { scope: 'user:alice', imported: [{ name: 'NEW_ONE', action: 'created', version: 1 }], skipped: [{ name: 'OLD_ONE', reason: 'exists' }] })
  const o = await imp('alice', { secrets: [{ name: 'OLD_ONE', value: 'new' }], overwrite: true })
  t.same(o.json().imported, [{ name: 'OLD_ONE', action: 'updated', version: 2 }])
  t.equal(f.store.readValues([{ scope: 'user:alice', name: 'OLD_ONE' }]).get('user:alice\0OLD_ONE')!.reveal(), 'new')

  await f.app.inject({ method: 'POST', url: '/api/v1/workspaces', headers: f.as('root'), payload: { name: 'lab' } })
  t.equal((await imp('bob', { workspace: 'lab', secrets: [{ name: 'X_Y', value: 'v' }] })).json().code, 'NFS_ERR_FORBIDDEN', 'no write role: refused')
  t.same(f.store.listSecrets(['workspace:lab']), [])
})
