// Per-user watch limits (SPEC section 11) through app.inject() on the real watch room, callers being real local users:
// roots per user, the poll interval, watched dirs per user across all of a user's roots (walks stop there, list and
// status say so), a user's walk entering only that user's dirs, admins unlimited; and `GET /status` showing a
// non-admin only their own roots (and the config's) while they are walked, degraded or limited (issue 13, finding 9).
import t from 'tap'
import { chownSync, mkdirSync } from 'node:fs'
import type { Dirent } from 'node:fs'
import { join } from 'node:path'
import type { WatchView } from '../../daemon/contract/watches.js'
import type { WalkDir, WalkFs } from '../../daemon/watch/walk.js'
import { ensureUsers } from '../helpers/users.js'
import { waitFor, watchFixture } from '../helpers/watch.js'
import { as, watchApp } from '../helpers/watch-app.js'

const [alice, bob, carol] = ensureUsers(['alice', 'bob', 'carol'])
const uids: Record<string, number> = { root: 0, alice: alice!.uid, bob: bob!.uid, carol: carol!.uid }

function tree (root: string, owner: { uid: number, gid: number }, n: number): void {
  mkdirSync(root, { recursive: true })
  chownSync(root, owner.uid, owner.gid)
  for (let i = 0; i < n; i++) {
    mkdirSync(join(root, `d${i}`))
    chownSync(join(root, `d${i}`), owner.uid, owner.gid)
  }
}

t.test('roots per user, poll interval, dirs per user across roots; admins unlimited', async t => {
  const f = await watchFixture(t, { mode: 'system', limits: { watchRootsPerUser: 2, watchedDirsPerUser: 15, minPollIntervalMs: 1000 } })
  const app = await watchApp(t, f, uids)
  const [a, b, c] = ['a', 'b', 'c'].map(n => join(f.dir, `bob-${n}`)) as [string, string, string]
  tree(a, bob!, 10)
  tree(b, bob!, 10)
  tree(c, bob!, 0)
  const add = async (who: string, payload: Record<string, unknown>): Promise<{ status: number, body: any }> => {
    const res = await app.inject({ method: 'POST', url: '/api/v1/watches', headers: as(who), payload })
    return { status: res.statusCode, body: res.json() }
  }

  let r = await add('bob', { root: a, poll: true, intervalMs: 999 })
  t.equal(r.status, 429)
  t.equal(r.body.code, 'NFS_ERR_LIMIT')
  t.match(r.body.message, /minPollIntervalMs/)
  r = await add('bob', { root: a, intervalMs: 100 })
  t.equal(r.body.code, 'NFS_ERR_LIMIT', 'the interval also paces the rechecks of live runs: bounded without --poll too')
  r = await add('bob', { root: a, depth: 1 })
  t.equal(r.status, 201)
  t.equal(r.body.intervalMs, 1000)
  r = await add('bob', { root: b, depth: 1 })
  t.equal(r.status, 201)
  r = await add('bob', { root: c })
  t.equal(r.status, 429)
  t.match(r.body.message, /watchRootsPerUser \(2\)/)
  await waitFor('walks done', () => (f.service.summary().walking ?? []).length === 0)

  // 11 dirs under a (itself and 10), then b got what was left of 15: its walk stopped there.
  const views = (await app.inject({ url: '/api/v1/watches', headers: as('bob') })).json<WatchView[]>()
  const dirs = f.service.watcher.groups().filter(g => g.key.startsWith(`root:${f.dir}/bob-`)).reduce((n, g) => n + g.dirs, 0)
  t.ok(dirs <= 15, `bob's roots watch ${dirs} dirs together`)
  t.equal(views.find(v => v.root === a)?.limited, null)
  t.match(views.find(v => v.root === b)?.limited, /watchedDirsPerUser \(15\)/)
  t.match((await app.inject({ url: '/api/v1/status', headers: as('bob') })).json().watches.limited, [new RegExp(`^${b}`)])

  // The limit counts stay right as roots go: removing a frees its dirs for the next walk.
  t.equal((await app.inject({ method: 'DELETE', url: `/api/v1/watches?root=${encodeURIComponent(a)}`, headers: as('bob') })).statusCode, 204)
  r = await add('bob', { root: c })
  t.equal(r.status, 201, 'a freed root slot can be used again')

  // An admin: any interval, any number of roots, no dir budget.
  r = await add('root', { root: a, poll: true, intervalMs: 100, depth: 1 })
  t.equal(r.status, 201)
  t.equal(r.body.intervalMs, 100)
  await waitFor('admin walk', () => (f.service.summary().walking ?? []).length === 0)
  t.equal((await app.inject({ url: '/api/v1/watches', headers: as('root') })).json<WatchView[]>().find(v => v.root === a)?.limited, null)
})

t.test('a user\'s walk enters only their own dirs', async t => {
  const f = await watchFixture(t, { mode: 'system' })
  const app = await watchApp(t, f, uids)
  const root = join(f.dir, 'bob-share')
  tree(root, bob!, 2)
  // alice's launch dir inside bob's tree (a shared dir): bob's watch does not walk into it
  const hers = join(root, 'alices')
  mkdirSync(join(hers, '.nextflow'), { recursive: true })
  chownSync(hers, alice!.uid, alice!.gid)
  const his = join(root, 'd0')
  mkdirSync(join(his, '.nextflow'))
  for (const [dir, u] of [[hers, alice!], [his, bob!]] as const) {
    chownSync(join(dir, '.nextflow'), u.uid, u.gid)
    const { writeFileSync } = await import('node:fs')
    writeFileSync(join(dir, '.nextflow', 'history'), '')
    chownSync(join(dir, '.nextflow', 'history'), u.uid, u.gid)
  }
  const res = await app.inject({ method: 'POST', url: '/api/v1/watches', headers: as('bob'), payload: { root, depth: 2 } })
  t.equal(res.statusCode, 201)
  await waitFor('walk', () => (f.service.summary().walking ?? []).length === 0)
  const g = f.service.watcher.groups().find(x => x.key === `root:${root}`)!
  t.equal(g.launchDirs, 1, 'only bob\'s own launch dir')
  t.notOk(f.service.watcher.covers(hers), 'alice\'s dir is not watched for bob')
})

t.test('GET /status: a non-admin sees only their own roots walking, degraded or limited', async t => {
  // bob's walk is held in readdir of his root until released, so it is "walking" for as long as the test needs.
  let release = (): void => {}
  const gate = new Promise<void>(resolve => { release = resolve })
  const wrapFs = (inner: WalkFs): WalkFs => ({
    ...inner,
    readdir: async (dir: string, at?: WalkDir): Promise<Dirent[]> => {
      if (dir.endsWith('bob-slow')) await gate
      return await inner.readdir(dir, at)
    }
  })
  const f = await watchFixture(t, { mode: 'system', wrapFs, limits: { watchedDirsPerUser: 3 } })
  t.teardown(release)
  const app = await watchApp(t, f, uids)
  const slow = join(f.dir, 'bob-slow')
  const big = join(f.dir, 'alice-big')
  tree(slow, bob!, 1)
  tree(big, alice!, 10)
  t.equal((await app.inject({ method: 'POST', url: '/api/v1/watches', headers: as('alice'), payload: { root: big, depth: 1 } })).statusCode, 201)
  const adding = app.inject({ method: 'POST', url: '/api/v1/watches', headers: as('bob'), payload: { root: slow } })
  await waitFor('bob walking', () => (f.service.summary().walking ?? []).includes(slow))
  await waitFor('alice limited', () => (f.service.summary().limited ?? []).length === 1)

  const status = async (who: string): Promise<{ roots: number, walking: string[], limited: string[], degraded: string[] }> =>
    (await app.inject({ url: '/api/v1/status', headers: as(who) })).json().watches
  const carolSees = await status('carol')
  t.same(carolSees.walking, [], 'carol sees no one else\'s root being walked')
  t.same(carolSees.limited, [])
  t.equal(carolSees.roots, 0)
  t.same((await status('bob')).walking, [slow], 'bob sees his own')
  t.same((await status('bob')).limited, [])
  t.match((await status('alice')).limited, [new RegExp(`^${big}`)])
  t.same((await status('alice')).walking, [])
  const all = await status('root')
  t.same(all.walking, [slow], 'an admin sees all')
  t.equal(all.limited.length, 1)
  t.equal(all.roots, 2)
  release()
  t.equal((await adding).statusCode, 201)
})
