// /api/v1/watches through app.inject() on the real watch room: a user may watch only dirs they own (admins any),
// API watches persist in watches.json (0600) across a restart, and removal is the owner's or an admin's.
import t from 'tap'
import { chmodSync, chownSync, mkdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import type { WatchView } from '../../daemon/contract/watches.js'
import { requireUsers } from '../helpers/requires.js'
import { watchFixture } from '../helpers/watch.js'
import { as, watchApp } from '../helpers/watch-app.js'
import { targetList, intOption } from '../../daemon/cli/watch.js'
import { commandsFor } from '../../daemon/cli/commands.js'

const COMMANDS = await commandsFor(undefined)

const [alice, bob] = requireUsers(t, ['alice', 'bob'])

t.test('watch add/list/remove: ownership, persistence, codes', async t => {
  let f = await watchFixture(t, { mode: 'system' })
  chmodSync(f.dir, 0o755)
  const mine = join(f.dir, 'alice-data')
  const theirs = join(f.dir, 'bob-data')
  mkdirSync(mine)
  mkdirSync(theirs)
  chownSync(mine, alice!.uid, alice!.gid)
  chownSync(theirs, bob!.uid, bob!.gid)
  let app = await watchApp(t, f, { alice: alice!.uid, bob: bob!.uid })

  let res = await app.inject({ method: 'POST', url: '/api/v1/watches', headers: as('alice'), payload: { root: theirs } })
  t.equal(res.statusCode, 403)
  t.equal(res.json().code, 'NFS_ERR_FORBIDDEN', 'a dir of someone else is refused for a non-admin')
  res = await app.inject({ method: 'POST', url: '/api/v1/watches', headers: as('alice'), payload: { root: 'relative/dir' } })
  t.equal(res.json().code, 'NFS_ERR_INVALID_PATH')
  res = await app.inject({ method: 'POST', url: '/api/v1/watches', headers: as('alice'), payload: { root: mine, targets: ['gcp'] } })
  t.equal(res.json().code, 'NFS_ERR_BAD_REQUEST')
  res = await app.inject({ method: 'POST', url: '/api/v1/watches', headers: as('alice'), payload: { root: mine, poll: true, intervalMs: 1500, depth: 2, targets: ['memory'] } })
  t.equal(res.statusCode, 201)
  t.match(res.json(), { root: mine, owner: 'alice', source: 'api', poll: true, intervalMs: 1500, depth: 2, targets: ['memory'] })
  t.ok(f.events.some(e => e.type === 'watch.added' && e.user === 'alice'))
  res = await app.inject({ method: 'POST', url: '/api/v1/watches', headers: as('alice'), payload: { root: mine } })
  t.equal(res.json().code, 'NFS_ERR_WATCH_EXISTS')
  res = await app.inject({ method: 'POST', url: '/api/v1/watches', headers: as('root'), payload: { root: theirs } })
  t.equal(res.statusCode, 201, 'an admin may watch any dir')

  const file = join(f.config.stateDir, 'watches.json')
  t.equal(statSync(file).mode & 0o777, 0o600)
  t.same(JSON.parse(readFileSync(file, 'utf8')).watches.map((w: { root: string }) => w.root).sort(), [mine, theirs].sort())
  const rootsOf = async (who: string): Promise<string[]> => (await app.inject({ url: '/api/v1/watches', headers: as(who) })).json<WatchView[]>().map(w => w.root).sort()
  t.same(await rootsOf('alice'), [mine], 'a user sees their own')
  t.same(await rootsOf('bob'), [], 'not another user\'s')
  t.same(await rootsOf('root'), [mine, theirs].sort(), 'an admin sees all')
  res = await app.inject({ method: 'DELETE', url: `/api/v1/watches?root=${encodeURIComponent(mine)}`, headers: as('bob') })
  t.equal(res.json().code, 'NFS_ERR_WATCH_NOT_FOUND', 'bob cannot remove alice\'s watch')
  t.equal((await app.inject({ url: '/api/v1/status', headers: as('root') })).json().watches.roots, 2)

  // A restart: the API watches come back from watches.json.
  await app.close()
  f = await f.restart()
  app = await watchApp(t, f, { alice: alice!.uid, bob: bob!.uid })
  t.same(await rootsOf('root'), [mine, theirs].sort(), 'the watches survive a restart')
  res = await app.inject({ method: 'DELETE', url: `/api/v1/watches?root=${encodeURIComponent(mine)}`, headers: as('alice') })
  t.equal(res.statusCode, 204)
  res = await app.inject({ method: 'DELETE', url: '/api/v1/watches', headers: as('root'), payload: { root: theirs } })
  t.equal(res.statusCode, 204)
  t.ok(f.events.some(e => e.type === 'watch.removed'))
  t.same(JSON.parse(readFileSync(file, 'utf8')).watches, [])
  t.same(await rootsOf('root'), [])
})

t.test('nf-secrets watch: in the command table; option parsing', async t => {
  const paths = COMMANDS.map(c => c.path.join(' '))
  for (const p of ['watch add', 'watch list', 'watch remove']) t.ok(paths.includes(p), p)
  t.same(targetList(['aws,memory', 'hpc']), ['aws', 'memory', 'hpc'])
  t.equal(targetList(undefined), undefined)
  t.equal(intOption('250', 'interval', 100, 600_000), 250)
  t.throws(() => intOption('50', 'interval', 100, 600_000), { code: 'NFS_ERR_USAGE' })
  t.throws(() => intOption('1e3', 'interval', 100, 600_000), { code: 'NFS_ERR_USAGE' })
})
