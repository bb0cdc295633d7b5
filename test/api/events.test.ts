// GET /events: what each caller sees. Another member's run never shows the names of that member's personal secrets
// (the security review's finding 8), and rights are asked again for every event, so a caller who loses them stops
// seeing events at once, not at the next connection.
import t from 'tap'
import type { WebSocket } from 'ws'
import { join } from 'node:path'
import { eventFor } from '../../daemon/api/events.js'
import type { NfsEvent } from '../../daemon/events.js'
import type { Caller, SecretMeta, Workspace } from '../../daemon/types.js'
import { appFixture, PEOPLE } from '../helpers/app.js'

const lab: Workspace = { name: 'lab', members: { alice: 'launch', carol: 'view' }, groups: {}, createdAt: '', createdBy: 'root', version: 1 }
const store = {
  getWorkspace: (n: string) => n === 'lab' ? lab : undefined,
  listSecrets: () => [{ name: 'WS_TOKEN', scope: 'workspace:lab' } as unknown as SecretMeta]
}
const who = (user: string, isAdmin = false): Caller => ({ user, uid: 1, gid: 1, pid: 1, groups: [user], gids: [1], isAdmin })
const ev = (over: Partial<NfsEvent>): NfsEvent => ({ type: 'run.provisioned', at: 'now', user: 'alice', workspace: 'lab', runId: 'r1', names: ['ALICE_TOKEN', 'WS_TOKEN'], ...over })

t.test('eventFor, by table', async t => {
  const rows: Array<[string, Caller, NfsEvent, NfsEvent | null]> = [
    ['the run\'s own user sees every name', who('alice'), ev({}), ev({})],
    ['an admin sees every name (SPEC 7: admins see all)', who('root', true), ev({}), ev({})],
    ['another member sees only the workspace\'s names', who('carol'), ev({}), ev({ names: ['WS_TOKEN'] })],
    ['a non-member sees nothing', who('bob'), ev({}), null],
    ['a personal run of another user: nothing', who('carol'), ev({ workspace: 'personal' }), null],
    ['another member\'s run ending carries no names', who('carol'), ev({ type: 'run.completed', names: undefined }), ev({ type: 'run.completed', names: undefined })],
    ['a workspace secret event is shown as it is, even for a name just deleted', who('carol'), ev({ type: 'secret.deleted', names: ['OLD_KEY'] }), ev({ type: 'secret.deleted', names: ['OLD_KEY'] })]
  ]
  for (const [what, caller, event, want] of rows) t.same(eventFor(caller, event, store), want, what)
})

async function stream (f: Awaited<ReturnType<typeof appFixture>>, user: string): Promise<{ ws: WebSocket, got: NfsEvent[], until: (pred: (e: NfsEvent) => boolean) => Promise<void> }> {
  await f.app.ready() // injectWS, unlike inject, does not wait for the plugins
  const ws = await (f.app as unknown as { injectWS: (p: string, c: unknown) => Promise<WebSocket> }).injectWS('/api/v1/events', { headers: f.as(user) })
  const got: NfsEvent[] = []
  const waiters: Array<() => void> = []
  ws.on('message', (d) => { got.push(JSON.parse(d.toString()) as NfsEvent); for (const w of waiters.splice(0)) w() })
  const until = async (pred: (e: NfsEvent) => boolean): Promise<void> => {
    while (!got.some(pred)) await new Promise<void>(resolve => waiters.push(resolve))
  }
  return { ws, got, until }
}

t.test('a view member\'s stream shows no personal secret names of another member', async t => {
  const f = await appFixture(t)
  const req = (user: string, method: 'POST' | 'PUT', url: string, payload: Record<string, unknown>): Promise<unknown> =>
    f.app.inject({ method, url, headers: f.as(user), payload })
  await req('root', 'POST', '/api/v1/workspaces', { name: 'lab', owner: 'alice' })
  await req('alice', 'PUT', '/api/v1/workspaces/lab/members/carol', { role: 'view' })
  await req('alice', 'POST', '/api/v1/secrets', { name: 'WS_TOKEN', value: 'w', workspace: 'lab' })
  await req('alice', 'POST', '/api/v1/secrets', { name: 'ALICE_TOKEN', value: 'a' })
  const carol = await stream(f, 'carol')
  const alice = await stream(f, 'alice')
  t.teardown(() => { carol.ws.terminate(); alice.ws.terminate() })
  const run = await f.app.inject({ method: 'POST', url: '/api/v1/runs', headers: f.as('alice'), payload: { mode: 'arm', workspace: 'lab', launchDir: join(f.dir, 'launch') } })
  t.equal(run.statusCode, 201, run.body)
  await carol.until(e => e.type === 'run.armed')
  await alice.until(e => e.type === 'run.armed')
  const carolsView = carol.got.find(e => e.type === 'run.provisioned')!
  t.same(carolsView.names, ['WS_TOKEN'], 'carol sees the workspace\'s name only')
  t.notMatch(JSON.stringify(carol.got), 'ALICE_TOKEN', 'alice\'s personal secret name never reaches carol')
  t.same(alice.got.find(e => e.type === 'run.provisioned')!.names!.sort(), ['ALICE_TOKEN', 'WS_TOKEN'], 'alice sees both')
})

t.test('rights are asked per event: an admin who stops being one stops seeing other users\' events', async t => {
  const f = await appFixture(t)
  const bob = PEOPLE.bob!
  bob.isAdmin = true
  t.teardown(() => { bob.isAdmin = false })
  const s = await stream(f, 'bob')
  t.teardown(() => s.ws.terminate())
  await f.app.inject({ method: 'POST', url: '/api/v1/secrets', headers: f.as('alice'), payload: { name: 'FIRST', value: 'x' } })
  await s.until(e => e.user === 'alice')
  t.pass('as an admin, bob sees alice\'s personal secret event')
  bob.isAdmin = false
  await f.app.inject({ method: 'POST', url: '/api/v1/secrets', headers: f.as('alice'), payload: { name: 'SECOND', value: 'x' } })
  // bob's own event after it: the stream is ordered, so once this is in, alice's would have been too.
  await f.app.inject({ method: 'POST', url: '/api/v1/secrets', headers: f.as('bob'), payload: { name: 'BOBS', value: 'x' } })
  await s.until(e => e.user === 'bob')
  t.same(s.got.map(e => e.names?.[0]), ['FIRST', 'BOBS'], 'nothing of alice\'s once bob is no longer an admin')
})
