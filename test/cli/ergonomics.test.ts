// The CLI's ergonomics (issue 17), in-process: "did you mean" for unknown commands and options, --json errors as the
// API's error object on one stderr line, NF_SECRETS_WORKSPACE as the default of -w. Asserts on exit codes and
// structure, never on prose.
import t from 'tap'
import type { Command } from '../../daemon/cli/args.js'
import { runCli } from '../../daemon/cli/main.js'
import { closest, editDistance } from '../../daemon/cli/suggest.js'
import { captureIo as io } from '../helpers/cli-io.js'

t.test('edit distance and the nearest word', async t => {
  const cases: Array<[string, string, number]> = [['list', 'lsit', 1], ['secrets', 'secrest', 1], ['add', 'add', 0], ['show', 'set', 3], ['', 'ab', 2]]
  for (const [a, b, d] of cases) t.equal(editDistance(a, b), d, `${a} ${b}`)
  t.equal(closest('lsit', ['list', 'add', 'remove']), 'list')
  t.equal(closest('zzzzzz', ['list', 'add']), undefined, 'nothing close: no suggestion')
})

t.test('--json: a usage error is one JSON line on stderr with the suggestion; exit 2', async t => {
  const cases: Array<[string[], string]> = [
    [['--json', 'secrest', 'list'], 'secrets list'],
    [['--json', 'secrets', 'lsit'], 'secrets list'],
    [['--json', 'secrets', 'list', '--wrokspace', 'x'], '--workspace']
  ]
  for (const [argv, suggestion] of cases) {
    const c = io()
    t.equal(await runCli(argv, c.io), 2, argv.join(' '))
    const lines = c.err().split('\n').filter(l => l !== '')
    t.equal(lines.length, 1)
    const body = JSON.parse(lines[0]!) as Record<string, unknown>
    t.match(body, { statusCode: 400, code: 'NFS_ERR_USAGE', message: String, suggestion })
    t.equal(c.out(), '')
  }
  const plain = io()
  t.equal(await runCli(['secrets', 'lsit'], plain.io), 2)
  t.match(plain.err(), /^nf-secrets: .*secrets list.* \(NFS_ERR_USAGE\)\n$/, 'the suggestion in the plain line too')
})

t.test('--json: a daemon that is not there is a JSON error too, exit 69', async t => {
  const c = io()
  t.equal(await runCli(['--json', '--socket', '/nonexistent/nfs.sock', 'status'], c.io), 69)
  t.match(JSON.parse(c.err()), { code: 'NFS_ERR_UNAVAILABLE', message: String })
})

t.test('NF_SECRETS_WORKSPACE is the default of -w; -w wins', async t => {
  const seen: Array<string | undefined> = []
  const probe: Command = { path: ['probe'], usage: '', summary: 'test', positionals: [0, 0], run: async (ctx) => { seen.push(ctx.global.workspace); return 0 } }
  t.equal(await runCli(['probe'], io({ NF_SECRETS_WORKSPACE: 'lab' }).io, [probe]), 0)
  t.equal(await runCli(['-w', 'other', 'probe'], io({ NF_SECRETS_WORKSPACE: 'lab' }).io, [probe]), 0)
  t.equal(await runCli(['probe'], io({ NF_SECRETS_WORKSPACE: '' }).io, [probe]), 0)
  t.same(seen, ['lab', 'other', undefined])
})

t.test('daemon down: the message names the socket tried and the start command of that mode', async t => {
  const { startHint } = await import('../../daemon/cli/client.js')
  const { SYSTEM_SOCKET } = await import('../../daemon/os/paths.js')
  t.match(startHint(SYSTEM_SOCKET), /systemctl start nf-secretsd/)
  t.match(startHint('/run/user/1000/nf-secretsd/api.sock'), /systemctl --user start nf-secretsd/)
  const c = io()
  t.equal(await runCli(['--json', '--socket', '/nonexistent/u.sock', 'status'], c.io), 69)
  const body = JSON.parse(c.err()) as { message: string }
  t.ok(body.message.includes('/nonexistent/u.sock'), 'names the socket tried')
  t.ok(body.message.includes('systemctl --user start'), 'and how to start a user-mode daemon')
})

t.test('secrets show picks the personal secret without -w, the workspace one with -w', async t => {
  const { pickSecret, secretDetail } = await import('../../daemon/cli/secrets.js')
  const meta = (name: string, scope: string): any => ({ name, scope, version: 1, createdAt: 'x', createdBy: 'a', updatedAt: '2026-01-01T00:00:00Z', updatedBy: 'a', lastUsed: null })
  const rows = [meta('T', 'user:alice'), meta('T', 'workspace:lab'), meta('U', 'workspace:lab')]
  t.equal(pickSecret(rows, 'T', undefined)?.scope, 'user:alice')
  t.equal(pickSecret(rows, 'T', 'lab')?.scope, 'workspace:lab')
  t.equal(pickSecret(rows, 'U', undefined), undefined, 'a workspace secret is not the personal one')
  t.equal(pickSecret(rows, 'U', 'other'), undefined)
  t.equal(secretDetail(rows[0]).split('\n').filter(l => l !== '').length, 6)
})

t.test('help fits 80 columns: the whole CLI, every group, every command, both spellings', async t => {
  const { commandsFor } = await import('../../daemon/cli/commands.js')
  const all = await commandsFor(undefined)
  const check = async (argv: string[]): Promise<void> => {
    const c = io()
    t.equal(await runCli(argv, c.io), 0, argv.join(' '))
    const lines = c.out().split('\n')
    t.ok(lines.length > 2, argv.join(' '))
    t.same(lines.filter(l => l.length > 80), [], `${argv.join(' ')}: no line over 80`)
  }
  await check(['--help'])
  await check(['help'])
  for (const group of new Set(all.map(c => c.path[0]!))) await check(['help', group])
  for (const c of all) {
    await check([...c.path, '--help'])
    await check(['help', ...c.path])
  }
  const c = io()
  t.equal(await runCli(['help', 'secrets', 'add'], c.io), 0)
  t.match(c.out(), /--value-file/, 'a command\'s help lists its options')
})

t.test('secrets list -w W shows only W\'s secrets', async t => {
  const { onlyScope } = await import('../../daemon/cli/secrets.js')
  const meta = (name: string, scope: string): any => ({ name, scope, version: 1 })
  const rows = [meta('A', 'user:alice'), meta('B', 'workspace:lab'), meta('C', 'workspace:other')]
  t.same(onlyScope(rows, 'lab').map(r => r.name), ['B'])
  t.same(onlyScope(rows, undefined).map(r => r.name), ['A', 'B', 'C'])
})
