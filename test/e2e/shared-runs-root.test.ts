// A runs root shared by two daemons (two login nodes, each with its own state dir and ledger; SPEC 11): each one's
// sweep, at start and on its timer, removes only run dirs it made itself (marked with its state dir's node id),
// never the other's live runs, and still removes its own leftovers.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { chownSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { requireUsers } from '../helpers/requires.js'
import { startTestDaemon, tempDir, type TestDaemon } from '../helpers/daemon.js'
import { runCli } from '../helpers/cli.js'

t.setTimeout(300_000)

const [alice] = requireUsers(t, ['alice', 'bob', 'carol'])

t.test('two daemons, two state dirs, one runs root: start, sweep, restart; only their own leftovers go', async t => {
  const top = tempDir(t)
  const runsRoot = join(top, 'shared-runs')
  const work = join(top, 'alice-work')
  mkdirSync(work, { mode: 0o700 })
  chownSync(work, alice!.uid, alice!.gid)
  const node = (name: string): { dir: string, config: Record<string, unknown> } => {
    const dir = join(top, name)
    mkdirSync(dir, { mode: 0o755 })
    const keyFile = join(dir, 'master.key')
    writeFileSync(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
    return { dir, config: { keyFile, hpc: { runsRoot } } }
  }
  const a = node('node-a')
  const b = node('node-b')
  const start = async (n: typeof a, build = true): Promise<TestDaemon> => {
    const d = await startTestDaemon(t, { mode: 'system', ...n, build })
    await d.waitForLog(l => l.msg === 'sweep done' && l.target === 'hpc')
    return d
  }
  const arm = async (d: TestDaemon): Promise<string> => {
    const env = { NF_SECRETS_SOCKET: d.socket }
    t.equal((await runCli(['secrets', 'add', 'TOKEN'], { user: 'alice', env, input: 'v' })).code, 0)
    const r = await runCli(['arm', '--format', 'json', '--ttl', '1h'], { user: 'alice', env, cwd: work })
    t.equal(r.code, 0, r.stderr)
    return (JSON.parse(r.stdout) as { runId: string }).runId
  }
  let da = await start(a)
  let db = await start(b, false)
  const runA = await arm(da)
  const runB = await arm(db)
  const userDir = join(runsRoot, 'alice')
  const store = (id: string): string => join(userDir, id, 'store.json')

  // Node A's leftover of a crash before its intent was written: a run dir marked by A that A's ledger never saw.
  await da.stop()
  const nodeA = readFileSync(join(da.stateDir, 'node-id'), 'utf8').trim()
  const orphan = join(userDir, 'OrphanOfA00001')
  mkdirSync(orphan, { mode: 0o700 })
  writeFileSync(join(orphan, '.nf-secretsd-node'), JSON.stringify({ node: nodeA, host: 'a' }))
  writeFileSync(join(orphan, 'store.json'), '[]')
  // A dir from before markers: no daemon can tell whose it is, so none removes it by sweeping.
  const unmarked = join(userDir, 'Unmarked000001')
  mkdirSync(unmarked, { mode: 0o700 })

  da = await start(a, false)
  t.notOk(existsSync(orphan), 'A swept its own leftover at start')
  t.ok(existsSync(store(runB)), 'A left B\'s live run alone')
  await db.stop()
  db = await start(b, false)
  t.ok(existsSync(store(runA)), 'B left A\'s live run alone')
  t.ok(existsSync(store(runB)), 'B kept its own live run')
  t.ok(existsSync(unmarked), 'an unmarked dir is nobody\'s to sweep')
  t.same(readdirSync(userDir).sort(), [runA, runB, 'Unmarked000001'].sort())

  // Each revokes its own run; the other's stays.
  t.equal((await runCli(['runs', 'revoke', runA], { user: 'alice', env: { NF_SECRETS_SOCKET: da.socket } })).code, 0)
  t.notOk(existsSync(join(userDir, runA)))
  t.ok(existsSync(store(runB)))
})
