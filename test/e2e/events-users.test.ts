// Events derived from the change feeds, watched by real local users over the daemon's socket (system mode). bob, who
// shares nothing with alice, follows `nf-secrets events` while alice creates, updates and deletes a personal secret
// and a secret of a workspace bob is not in: he must see none of it (not even a name), while alice sees each change
// once, named with who made it, and an admin sees everything. The events are no longer published by the API routes but
// derived from the store's feed, so this proves the derived events keep the old visibility rule and carry no value.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { requireUsers } from '../helpers/requires.js'
import { startTestDaemon, tempDir } from '../helpers/daemon.js'
import { json, runCli, spawnCli, type RunOptions, type RunResult } from '../helpers/cli.js'

t.setTimeout(600_000)
const [alice, bob] = requireUsers(t, ['alice', 'bob'])

const dir = tempDir(t)
const keyFile = join(dir, 'master.key')
writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
const daemon = await startTestDaemon(t, { mode: 'system', dir, config: { keyFile, hpc: { runsRoot: join(dir, 'runs') } } })
const env = { NF_SECRETS_SOCKET: daemon.socket }
const as = async (user: string | undefined, args: string[], opts: RunOptions = {}): Promise<RunResult> =>
  await runCli(args, { ...opts, ...(user !== undefined ? { user } : {}), env })

interface Ev { type: string, user: string, workspace?: string, names?: string[] }

t.test('bob sees none of alice\'s secret events; alice sees hers once, by who made them; root sees all', async t => {
  const canary = `CANARY-${randomBytes(8).toString('hex')}`
  t.equal((await as(undefined, ['workspaces', 'create', 'alicelab', '--owner', alice!.name])).code, 0)
  const streams = Object.fromEntries(await Promise.all([alice!.name, bob!.name, 'root'].map(async u => {
    const s = spawnCli(t, ['events', '--json'], { env, ...(u !== 'root' ? { user: u } : {}) })
    await s.waitFor('stderr', /streaming events/)
    return [u, s] as const
  })))
  const secret = `ALICE_PRIVATE_${randomBytes(3).toString('hex').toUpperCase()}`
  for (const [args, input] of [
    [['secrets', 'add', secret], `${canary}\n`],
    [['secrets', 'update', secret], `${canary}2\n`],
    [['secrets', 'add', 'LAB_TOKEN', '-w', 'alicelab'], `${canary}3\n`],
    [['secrets', 'delete', 'LAB_TOKEN', '-w', 'alicelab'], undefined],
    [['secrets', 'delete', secret], undefined]
  ] as Array<[string[], string | undefined]>) {
    const r = await as(alice!.name, args, input !== undefined ? { input } : {})
    t.equal(r.code, 0, `alice: ${args.join(' ')}: ${r.stderr}`)
  }
  // bob's own change last: the stream is ordered, so once his is in, anything of alice's would be too.
  t.equal((await as(bob!.name, ['secrets', 'add', 'BOBS_OWN'], { input: 'x\n' })).code, 0)
  await streams.root!.waitFor('stdout', /BOBS_OWN/)
  await streams[bob!.name]!.waitFor('stdout', /BOBS_OWN/)
  await streams[alice!.name]!.waitFor('stdout', new RegExp(`secret\\.deleted.*${secret}`))
  const seen = async (u: string): Promise<Ev[]> => {
    const r = await streams[u]!.stop()
    t.notMatch(r.stdout + r.stderr, canary, `no value in ${u}'s stream`)
    return r.stdout.trim().split('\n').filter(l => l !== '').map(l => json<Ev>(l))
  }
  const line = (e: Ev): string => `${e.type} ${e.user} ${e.workspace ?? '-'} ${e.names?.join(',') ?? ''}`
  const alices = [
    `secret.created ${alice!.name} - ${secret}`, `secret.updated ${alice!.name} - ${secret}`,
    `secret.created ${alice!.name} alicelab LAB_TOKEN`, `secret.deleted ${alice!.name} alicelab LAB_TOKEN`,
    `secret.deleted ${alice!.name} - ${secret}`
  ]
  const bobs = (await seen(bob!.name)).map(line)
  t.same(bobs, [`secret.created ${bob!.name} - BOBS_OWN`], 'bob: only his own; nothing of alice\'s, not a name')
  t.notMatch(bobs.join('\n'), /ALICE_PRIVATE|LAB_TOKEN/)
  t.same((await seen(alice!.name)).map(line), alices, 'alice: each of her changes once, hers by name')
  t.same((await seen('root')).map(line), [...alices, `secret.created ${bob!.name} - BOBS_OWN`], 'root (admin): everything')
})
