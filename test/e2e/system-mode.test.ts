// The daemon as root in system mode on a temporary socket, called by real local users (alice, bob, carol) through
// runuser: identity comes from SO_PEERCRED alone, user secrets are private, workspace roles and Unix-group mappings
// decide what each member may do, and nothing a client sends (headers, query, environment) changes who it is.
import t from 'tap'
import type { Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { TEST_GROUP } from '../helpers/users.js'
import { requireUsers } from '../helpers/requires.js'
import { startTestDaemon, tempDir } from '../helpers/daemon.js'
import { errorCode, json, runCli, type RunOptions, type RunResult } from '../helpers/cli.js'
import { rawRequest } from '../helpers/raw-request.js'
import { storedValue } from '../helpers/store-peek.js'
import type { SecretMeta } from '../../daemon/types.js'

t.setTimeout(900_000)

const [alice, bob] = requireUsers(t, ['alice', 'bob', 'carol'])
const dir = tempDir(t)
const keyFile = join(dir, 'master.key')
writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
const daemon = await startTestDaemon(t, {
  mode: 'system',
  dir,
  config: { adminGroup: 'nfs-e2e-admins', keyFile, hpc: { runsRoot: join(dir, 'runs') } }
})

function as (user: string | undefined, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return runCli(args, { ...opts, ...(user !== undefined ? { user } : {}), env: { NF_SECRETS_SOCKET: daemon.socket, ...opts.env } })
}

function names (r: RunResult): string[] {
  return json<SecretMeta[]>(r.stdout).map(s => `${s.scope}/${s.name}`).sort()
}

function expectCode (t: Test, r: RunResult, exit: number, code: string, what: string): void {
  t.equal(r.code, exit, `${what}: exit ${exit} (${r.stderr.trim()})`)
  t.equal(errorCode(r.stderr), code, `${what}: ${code}`)
}

t.test('each caller is who the kernel says', async t => {
  const a = json<{ user: string, uid: number, groups: string[], admin: boolean }>((await as('alice', ['whoami', '--json'])).stdout)
  t.match(a, { user: 'alice', uid: alice!.uid, admin: false })
  t.ok(a.groups.includes(TEST_GROUP), 'alice is in genomics')
  t.match(json((await as('bob', ['whoami', '--json'])).stdout), { user: 'bob', uid: bob!.uid, admin: false })
  t.match(json((await as(undefined, ['whoami', '--json'])).stdout), { user: 'root', uid: 0, admin: true })
  // The environment of the client is not an identity either.
  t.match(json((await as('bob', ['whoami', '--json'], { env: { USER: 'alice', LOGNAME: 'alice', SUDO_USER: 'alice' } })).stdout), { user: 'bob' })
})

t.test('user secrets are private to their user', async t => {
  t.equal((await as('alice', ['secrets', 'add', 'ALICE_TOKEN'], { input: 'alice-value\n' })).code, 0)
  t.equal((await as('bob', ['secrets', 'add', 'BOB_TOKEN'], { input: 'bob-value\n' })).code, 0)
  t.same(names(await as('bob', ['secrets', 'list', '--json'])), ['user:bob/BOB_TOKEN'])
  t.same(names(await as('alice', ['secrets', 'list', '--json'])), ['user:alice/ALICE_TOKEN'])
  t.same(json((await as('bob', ['secrets', 'resolve', '--json'])).stdout), [{ name: 'BOB_TOKEN', source: 'user', scope: 'user:bob' }])
  // bob's commands only ever address bob's own scope: alice's secret is simply not there for him.
  expectCode(t, await as('bob', ['secrets', 'update', 'ALICE_TOKEN'], { input: 'hijacked\n' }), 3, 'NFS_ERR_SECRET_NOT_FOUND', 'bob updates alice\'s')
  expectCode(t, await as('bob', ['secrets', 'delete', 'ALICE_TOKEN']), 3, 'NFS_ERR_SECRET_NOT_FOUND', 'bob deletes alice\'s')
  t.equal(storedValue(daemon.stateDir, 'user:alice', 'ALICE_TOKEN', keyFile), 'alice-value', 'alice\'s value is untouched on disk')
  t.equal(storedValue(daemon.stateDir, 'user:bob', 'ALICE_TOKEN', keyFile), null)
  // Root administers workspaces but has no way to list or read a user's secrets either.
  t.same(names(await as(undefined, ['secrets', 'list', '--json'])), [])
})

t.test('workspaces: only system admins create and delete them', async t => {
  expectCode(t, await as('alice', ['workspaces', 'create', 'lab']), 4, 'NFS_ERR_FORBIDDEN', 'alice creates')
  const created = await as(undefined, ['workspaces', 'create', 'lab', '--owner', 'alice', '--json'])
  t.equal(created.code, 0, created.stderr)
  t.match(json(created.stdout), { name: 'lab', members: { alice: 'owner' } })
  expectCode(t, await as(undefined, ['workspaces', 'create', 'lab']), 5, 'NFS_ERR_WORKSPACE_EXISTS', 'root creates twice')
  expectCode(t, await as('alice', ['workspaces', 'delete', 'lab']), 4, 'NFS_ERR_FORBIDDEN', 'an owner deletes')
  expectCode(t, await as('bob', ['workspaces', 'members', 'lab']), 4, 'NFS_ERR_FORBIDDEN', 'a non-member reads members')
  expectCode(t, await as('bob', ['workspaces', 'member-set', 'lab', 'bob', 'owner']), 4, 'NFS_ERR_FORBIDDEN', 'bob makes himself owner')
  t.same(json((await as('bob', ['workspaces', 'list', '--json'])).stdout), [], 'bob sees no workspace he is not in')
})

t.test('roles: view reads, maintain writes', async t => {
  t.equal((await as('alice', ['workspaces', 'member-set', 'lab', 'carol', 'view'])).code, 0, 'the owner adds carol as view')
  expectCode(t, await as('carol', ['secrets', 'add', 'LAB_KEY', '-w', 'lab'], { input: 'v1\n' }), 4, 'NFS_ERR_FORBIDDEN', 'view adds')
  t.equal(storedValue(daemon.stateDir, 'workspace:lab', 'LAB_KEY', keyFile), null)
  t.equal((await as('alice', ['secrets', 'add', 'LAB_KEY', '-w', 'lab'], { input: 'lab-value\n' })).code, 0, 'the owner adds')
  t.same(names(await as('carol', ['secrets', 'list', '-w', 'lab', '--json'])), ['workspace:lab/LAB_KEY'], 'view lists')
  expectCode(t, await as('carol', ['secrets', 'delete', 'LAB_KEY', '-w', 'lab']), 4, 'NFS_ERR_FORBIDDEN', 'view deletes')
  expectCode(t, await as('carol', ['workspaces', 'member-set', 'lab', 'carol', 'owner']), 4, 'NFS_ERR_FORBIDDEN', 'view promotes itself')

  t.equal((await as('alice', ['workspaces', 'member-set', 'lab', 'carol', 'maintain'])).code, 0)
  const upd = await as('carol', ['secrets', 'update', 'LAB_KEY', '-w', 'lab'], { input: 'carol-value\n' })
  t.equal(upd.code, 0, upd.stderr)
  t.equal(storedValue(daemon.stateDir, 'workspace:lab', 'LAB_KEY', keyFile), 'carol-value', 'maintain writes')
  t.equal((await as('carol', ['secrets', 'add', 'CAROL_LAB', '-w', 'lab'], { input: 'c\n' })).code, 0, 'maintain adds')
  t.match(json((await as('carol', ['workspaces', 'members', 'lab', '--json'])).stdout), { members: { alice: 'owner', carol: 'maintain' } })

  t.equal((await as('alice', ['workspaces', 'member-remove', 'lab', 'carol'])).code, 0)
  expectCode(t, await as('carol', ['secrets', 'list', '-w', 'lab']), 4, 'NFS_ERR_FORBIDDEN', 'a removed member lists')
  expectCode(t, await as('bob', ['secrets', 'list', '-w', 'lab']), 4, 'NFS_ERR_FORBIDDEN', 'a non-member lists')
})

t.test('a Unix-group mapping grants its role to the group\'s members', async t => {
  t.equal((await as(undefined, ['workspaces', 'create', 'grp'])).code, 0)
  t.equal((await as(undefined, ['workspaces', 'group-set', 'grp', TEST_GROUP, 'launch'])).code, 0, 'a system admin maps the group')
  t.match(json((await as('alice', ['whoami', '--json'])).stdout), { roles: { grp: 'launch' } })
  t.equal((await as('alice', ['secrets', 'list', '-w', 'grp'])).code, 0, 'launch reads')
  expectCode(t, await as('alice', ['secrets', 'add', 'GRP_KEY', '-w', 'grp'], { input: 'g\n' }), 4, 'NFS_ERR_FORBIDDEN', 'launch adds')
  expectCode(t, await as('bob', ['secrets', 'list', '-w', 'grp']), 4, 'NFS_ERR_FORBIDDEN', 'bob is not in the group')

  t.equal((await as(undefined, ['workspaces', 'group-set', 'grp', TEST_GROUP, 'maintain'])).code, 0)
  t.equal((await as('alice', ['secrets', 'add', 'GRP_KEY', '-w', 'grp'], { input: 'group-value\n' })).code, 0, 'maintain through the group adds')
  t.equal(storedValue(daemon.stateDir, 'workspace:grp', 'GRP_KEY', keyFile), 'group-value')
  t.same(json((await as('alice', ['secrets', 'resolve', '-w', 'grp', '--json'])).stdout),
    [{ name: 'ALICE_TOKEN', source: 'user', scope: 'user:alice' }, { name: 'GRP_KEY', source: 'workspace', scope: 'workspace:grp' }])

  t.equal((await as(undefined, ['workspaces', 'group-remove', 'grp', TEST_GROUP])).code, 0)
  expectCode(t, await as('alice', ['secrets', 'list', '-w', 'grp']), 4, 'NFS_ERR_FORBIDDEN', 'after the mapping is removed')
  expectCode(t, await as(undefined, ['workspaces', 'group-set', 'grp', 'no-such-group-xyz', 'view']), 3, 'NFS_ERR_UNKNOWN_USER', 'an unknown group')
})

t.test('bob cannot claim to be alice by any header, query or argument', async t => {
  const forged = {
    'x-user': 'alice',
    'x-forwarded-user': 'alice',
    'x-remote-user': 'alice',
    'remote-user': 'alice',
    'x-uid': String(alice!.uid),
    authorization: `Basic ${Buffer.from('alice:x').toString('base64')}`,
    forwarded: 'for=alice'
  }
  const who = await rawRequest({ socket: daemon.socket, path: `/api/v1/whoami?user=alice&uid=${alice!.uid}`, headers: forged }, { user: 'bob' })
  t.equal(who.status, 200)
  t.match(json(who.body), { user: 'bob', uid: bob!.uid })
  const list = await rawRequest({ socket: daemon.socket, path: '/api/v1/secrets', headers: forged }, { user: 'bob' })
  t.equal(list.status, 200)
  t.same(json<SecretMeta[]>(list.body).map(s => s.scope), ['user:bob'], 'only bob\'s own secrets')
  const sneaky = await rawRequest({ socket: daemon.socket, path: '/api/v1/secrets?user=alice', headers: forged }, { user: 'bob' })
  t.notMatch(sneaky.body, 'ALICE_TOKEN', 'a user= query never reaches alice\'s scope')
  const del = await rawRequest({ socket: daemon.socket, method: 'DELETE', path: '/api/v1/secrets/ALICE_TOKEN?workspace=personal', headers: forged }, { user: 'bob' })
  t.equal(json<{ code: string }>(del.body).code, 'NFS_ERR_SECRET_NOT_FOUND')
  const ws = await rawRequest({ socket: daemon.socket, method: 'POST', path: '/api/v1/workspaces', headers: { ...forged, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bobs', owner: 'bob' }) }, { user: 'bob' })
  t.equal(json<{ code: string }>(ws.body).code, 'NFS_ERR_FORBIDDEN', 'forged headers give bob no admin rights')
  t.equal(storedValue(daemon.stateDir, 'user:alice', 'ALICE_TOKEN', keyFile), 'alice-value')
})

t.test('root deletes a workspace, and its secrets go with it', async t => {
  t.equal((await as(undefined, ['workspaces', 'delete', 'grp'])).code, 0)
  t.equal(storedValue(daemon.stateDir, 'workspace:grp', 'GRP_KEY', keyFile), null)
  expectCode(t, await as(undefined, ['workspaces', 'members', 'grp']), 3, 'NFS_ERR_WORKSPACE_NOT_FOUND', 'members of a deleted workspace')
})
