// `secrets set NAME` against a real system-mode daemon with real users: creates, then overwrites (the version goes up,
// the value on disk is the new one), in the personal scope or a workspace's with -w; as bob, neither alice's personal
// secret nor a workspace where he may not write is touched, and a value on the command line is refused.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { requireUsers } from '../helpers/requires.js'
import { startTestDaemon, tempDir } from '../helpers/daemon.js'
import { errorCode, json, runCli, type RunOptions, type RunResult } from '../helpers/cli.js'
import { storedValue } from '../helpers/store-peek.js'
import type { SecretMeta } from '../../daemon/types.js'

t.setTimeout(300_000)
requireUsers(t, ['alice', 'bob'])
const dir = tempDir(t)
const keyFile = join(dir, 'master.key')
writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
const d = await startTestDaemon(t, { mode: 'system', dir, config: { keyFile } })
const CANARY = `canary-set-${randomBytes(6).toString('hex')}`

function as (user: string | undefined, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return runCli(args, { ...opts, ...(user !== undefined ? { user } : {}), env: { NF_SECRETS_SOCKET: d.socket, ...opts.env } })
}
const stored = (scope: `user:${string}` | `workspace:${string}`, name: string): string | null => storedValue(d.stateDir, scope, name, keyFile)

t.test('set creates, then overwrites; personal or -w', async t => {
  const first = await as('alice', ['secrets', 'set', 'TOKEN', '--json'], { input: `one-${CANARY}` })
  t.equal(first.code, 0, first.stderr)
  t.match(json<SecretMeta>(first.stdout), { name: 'TOKEN', scope: 'user:alice', version: 1 })
  const again = await as('alice', ['secrets', 'set', 'TOKEN', '--json'], { input: `two-${CANARY}` })
  t.equal(again.code, 0, again.stderr)
  t.match(json<SecretMeta>(again.stdout), { scope: 'user:alice', version: 2 })
  t.equal(stored('user:alice', 'TOKEN'), `two-${CANARY}`)

  t.equal((await as(undefined, ['workspaces', 'create', 'lab', '--owner', 'alice'])).code, 0)
  const ws = await as('alice', ['secrets', 'set', 'TOKEN', '-w', 'lab', '--json'], { input: 'lab-value' })
  t.match(json<SecretMeta>(ws.stdout), { scope: 'workspace:lab', version: 1 }, 'the workspace\'s own, beside the personal one')
  t.equal(stored('user:alice', 'TOKEN'), `two-${CANARY}`, 'the personal one is untouched')
  t.notMatch(first.stdout + first.stderr + again.stdout + again.stderr + d.log(), CANARY)
})

t.test('as bob: his own scope only; no write where his role does not allow it', async t => {
  const mine = await as('bob', ['secrets', 'set', 'TOKEN', '--json'], { input: 'bob-value' })
  t.match(json<SecretMeta>(mine.stdout), { scope: 'user:bob', version: 1 }, 'bob gets a TOKEN of his own')
  t.equal(stored('user:alice', 'TOKEN'), `two-${CANARY}`, 'alice\'s is untouched')

  const notMember = await as('bob', ['secrets', 'set', 'TOKEN', '-w', 'lab'], { input: 'hijack' })
  t.equal(notMember.code, 4, notMember.stderr)
  t.equal(errorCode(notMember.stderr), 'NFS_ERR_FORBIDDEN')
  t.equal((await as('alice', ['workspaces', 'member-set', 'lab', 'bob', 'launch'])).code, 0)
  const launcher = await as('bob', ['secrets', 'set', 'TOKEN', '-w', 'lab'], { input: 'hijack' })
  t.equal(errorCode(launcher.stderr), 'NFS_ERR_FORBIDDEN', 'launch may use, not change')
  t.equal(stored('workspace:lab', 'TOKEN'), 'lab-value')

  const argv = await as('bob', ['secrets', 'set', 'TOKEN', 'in-argv'])
  t.equal(argv.code, 2)
  t.equal(errorCode(argv.stderr), 'NFS_ERR_USAGE')
  t.notMatch(argv.stderr, 'in-argv', 'the value is not echoed')
})
