// POST /runs with `names` (least privilege, SPEC 11): the run gets exactly the referenced names that resolve; a
// referenced name that resolves to nothing stops the run before anything is placed (NFS_ERR_SECRET_MISSING, naming
// it), unless allowMissing; `only` wins; no `names` (--all, or a client older than SPEC 11) gets every resolved one.
import t from 'tap'
import { join } from 'node:path'
import { appFixture } from '../helpers/app.js'

t.test('names: only those placed; missing refused before anything is placed; allowMissing; only wins', async t => {
  const f = await appFixture(t)
  const launchDir = join(f.dir, 'launch')
  for (const name of ['API_TOKEN', 'DB_PASSWORD', 'UNUSED_KEY']) {
    t.equal((await f.app.inject({ method: 'POST', url: '/api/v1/secrets', headers: f.as('alice'), payload: { name, value: `v-${name}` } })).statusCode, 201)
  }
  const create = async (body: Record<string, unknown>): Promise<{ statusCode: number, json: () => any }> =>
    await f.app.inject({ method: 'POST', url: '/api/v1/runs', headers: f.as('alice'), payload: { mode: 'arm', launchDir, ...body } })
  const placed = (runId: string): string[] => [...(f.memory.placed.get(runId)?.keys() ?? [])].sort()

  const some = await create({ names: ['DB_PASSWORD', 'API_TOKEN'] })
  t.equal(some.statusCode, 201)
  t.same(some.json().secrets.sort(), ['API_TOKEN', 'DB_PASSWORD'])
  t.same(placed(some.json().runId), ['API_TOKEN', 'DB_PASSWORD'], 'UNUSED_KEY never reached the target')

  const none = await create({ names: [] })
  t.equal(none.statusCode, 201)
  t.same(placed(none.json().runId), [], 'a pipeline that references nothing gets nothing')

  const before = f.memory.placed.size
  const runsBefore = (await f.app.inject({ url: '/api/v1/runs?all=true', headers: f.as('alice') })).json().length
  const missing = await create({ names: ['API_TOKEN', 'NOT_THERE', 'ALSO_GONE'] })
  t.equal(missing.statusCode, 404)
  t.equal(missing.json().code, 'NFS_ERR_SECRET_MISSING')
  t.match(missing.json().message, /ALSO_GONE, NOT_THERE/, 'the names are named')
  t.equal(f.memory.placed.size, before, 'nothing placed')
  t.equal((await f.app.inject({ url: '/api/v1/runs?all=true', headers: f.as('alice') })).json().length, runsBefore, 'no run in the ledger')

  const allowed = await create({ names: ['API_TOKEN', 'NOT_THERE'], allowMissing: true })
  t.equal(allowed.statusCode, 201)
  t.same(placed(allowed.json().runId), ['API_TOKEN'])

  const only = await create({ only: ['UNUSED_KEY'], names: ['NOT_THERE'] })
  t.equal(only.statusCode, 201, 'only wins over names')
  t.same(placed(only.json().runId), ['UNUSED_KEY'])

  const all = await create({})
  t.same(placed(all.json().runId), ['API_TOKEN', 'DB_PASSWORD', 'UNUSED_KEY'], 'no names: every resolved secret')

  // Bob's secrets do not satisfy alice's references, and a name that is not a Nextflow name is refused by shape.
  t.equal((await f.app.inject({ method: 'POST', url: '/api/v1/secrets', headers: f.as('bob'), payload: { name: 'BOB_ONLY', value: 'b' } })).statusCode, 201)
  t.equal((await create({ names: ['BOB_ONLY'] })).json().code, 'NFS_ERR_SECRET_MISSING')
  t.equal((await create({ names: ['bad name\n'] })).json().code, 'NFS_ERR_BAD_REQUEST')
  t.equal((await create({ names: ['API_TOKEN'], allowMissing: 'yes' })).json().code, 'NFS_ERR_BAD_REQUEST')
})
