import t from 'tap'
import type { Test } from 'tap'
import { parseCommandLine, matchCommand, helpText, type Command, type CommandContext } from '../../daemon/cli/args.js'
import { commandsFor } from '../../daemon/cli/commands.js'
import { secretsCommands } from '../../daemon/cli/secrets.js'
import { isCoded } from '../../daemon/errors.js'

const COMMANDS = await commandsFor(undefined)

const SECRET = 'hunter2-do-not-echo'

function usageError (t: Test, fn: () => unknown, what: string): Error {
  let caught: unknown
  try {
    fn()
  } catch (err) {
    caught = err
  }
  t.ok(isCoded(caught, 'NFS_ERR_USAGE'), `${what}: NFS_ERR_USAGE`)
  return caught as Error
}

t.test('commands are found by their path, with global options anywhere', async t => {
  for (const argv of [
    ['secrets', 'list', '--json', '-w', 'lab'],
    ['--json', 'secrets', '-w', 'lab', 'list'],
    ['-w', 'lab', '--json', 'secrets', 'list'],
    ['--workspace=lab', 'secrets', 'list', '--json']
  ]) {
    const p = parseCommandLine(COMMANDS, argv)
    if (p.kind !== 'command') throw new Error('expected a command')
    t.same(p.command.path, ['secrets', 'list'], argv.join(' '))
    t.same(p.global, { json: true, workspace: 'lab' }, argv.join(' '))
    t.same(p.args, [])
  }
  const p = parseCommandLine(COMMANDS, ['--socket', '/tmp/x.sock', 'workspaces', 'member-set', 'lab', 'alice', 'view'])
  if (p.kind !== 'command') throw new Error('expected a command')
  t.same(p.command.path, ['workspaces', 'member-set'])
  t.same(p.args, ['lab', 'alice', 'view'])
  t.equal(p.global.socket, '/tmp/x.sock')
  t.equal(p.global.json, false)
})

t.test('command options are parsed per command', async t => {
  const p = parseCommandLine(COMMANDS, ['secrets', 'add', 'TOKEN', '--value-file', '/tmp/v', '--base64'])
  if (p.kind !== 'command') throw new Error('expected a command')
  t.same(p.args, ['TOKEN'])
  t.equal(p.options['value-file'], '/tmp/v')
  t.equal(p.options.base64, true)
  const create = parseCommandLine(COMMANDS, ['workspaces', 'create', 'lab', '--owner', 'alice'])
  if (create.kind !== 'command') throw new Error('expected a command')
  t.equal(create.options.owner, 'alice')
  // An option of another command is unknown here.
  usageError(t, () => parseCommandLine(COMMANDS, ['secrets', 'list', '--owner', 'alice']), 'foreign option')
})

t.test('a value given as an argument is refused, and the error never repeats it', async t => {
  for (const argv of [
    ['secrets', 'add', 'TOKEN', SECRET],
    ['secrets', 'update', 'TOKEN', SECRET],
    ['secrets', 'add', 'TOKEN', '--', SECRET],
    ['secrets', 'add', 'TOKEN', `--valu=${SECRET}`],
    ['secrets', 'add', 'TOKEN', `--base64=${SECRET}`],
    ['status', SECRET],
    ['secrets', 'list', SECRET]
  ]) {
    const err = usageError(t, () => parseCommandLine(COMMANDS, argv), argv.slice(0, 2).join(' '))
    t.notMatch(err.message, SECRET, 'the message does not contain the argument')
  }
})

t.test('--value is refused by add and update before anything is read or sent', async t => {
  for (const path of [['secrets', 'add'], ['secrets', 'update']]) {
    const p = parseCommandLine(COMMANDS, [...path, 'TOKEN', '--value', SECRET])
    if (p.kind !== 'command') throw new Error('expected a command')
    const ctx = {
      args: p.args,
      options: p.options,
      global: p.global,
      socketPath: '/nonexistent',
      client: () => { throw new Error('the client must not be used') },
      out: { json: false, result: () => {}, line: () => {} },
      io: { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: {}, cwd: '/' }
    } as unknown as CommandContext
    await t.rejects(p.command.run(ctx), { code: 'NFS_ERR_USAGE' })
    await p.command.run(ctx).catch((err: Error) => t.notMatch(err.message, SECRET))
  }
})

t.test('missing arguments, unknown commands and bare groups are usage errors', async t => {
  usageError(t, () => parseCommandLine(COMMANDS, ['secrets', 'add']), 'missing NAME')
  usageError(t, () => parseCommandLine(COMMANDS, ['workspaces', 'member-set', 'lab', 'alice']), 'missing ROLE')
  usageError(t, () => parseCommandLine(COMMANDS, ['frobnicate']), 'unknown command')
  usageError(t, () => parseCommandLine(COMMANDS, ['secrets']), 'group without subcommand')
  usageError(t, () => parseCommandLine(COMMANDS, ['secrets', 'frobnicate']), 'unknown subcommand')
  usageError(t, () => parseCommandLine(COMMANDS, ['status', '--socket']), 'option without its value')
})

t.test('help and version', async t => {
  t.same(parseCommandLine(COMMANDS, []), { kind: 'help', prefix: [] })
  t.same(parseCommandLine(COMMANDS, ['--help']), { kind: 'help', prefix: [] })
  t.same(parseCommandLine(COMMANDS, ['secrets', '--help']), { kind: 'help', prefix: ['secrets'] })
  t.same(parseCommandLine(COMMANDS, ['--version']), { kind: 'version' })
  const p = parseCommandLine(COMMANDS, ['secrets', 'add', '--help'])
  t.equal(p.kind === 'command' && p.help, true, 'command help needs no NAME')
  const text = helpText(COMMANDS, ['secrets'])
  for (const c of secretsCommands) t.match(text, c.path.join(' '))
  t.notMatch(text, 'workspaces create', 'group help lists only the group')
})

t.test('a passthrough command takes everything from its first positional verbatim', async t => {
  const run: Command = {
    path: ['run'],
    usage: '[--target T] [--] CMD ...',
    summary: 'test',
    options: { target: { type: 'string' } },
    positionals: [1, Infinity],
    passthrough: true,
    run: async () => 0
  }
  const table = [...COMMANDS.filter(c => c.path[0] !== 'run'), run]
  const a = parseCommandLine(table, ['run', '--target', 'hpc', 'nextflow', 'run', 'x.nf', '-resume', '--json'])
  if (a.kind !== 'command') throw new Error('expected a command')
  t.equal(a.options.target, 'hpc')
  t.same(a.args, ['nextflow', 'run', 'x.nf', '-resume', '--json'])
  t.equal(a.global.json, false, 'a flag of the wrapped command is not ours')
  const b = parseCommandLine(table, ['--json', 'run', '--', '--weird', 'arg'])
  if (b.kind !== 'command') throw new Error('expected a command')
  t.same(b.args, ['--weird', 'arg'])
  t.equal(b.global.json, true)
  t.same(matchCommand(table, ['-w', 'lab', 'run', 'echo']), { command: run, at: [2] })
})
