// nf-secrets sbatch, the pure parts: which words are ours and which sbatch's, the argv sbatch gets, and the job id
// it prints. The command against a real Slurm: test/e2e/slurm-sbatch.test.ts.
import t from 'tap'
import { parseCommandLine } from '../../daemon/cli/args.js'
import { commandsFor } from '../../daemon/cli/commands.js'
import { parseParsable, sbatchArgv } from '../../daemon/cli/sbatch.js'

const COMMANDS = await commandsFor(undefined)

t.test('our options come first; from the first option we do not know, everything is sbatch\'s, verbatim', async t => {
  const cases: Array<[string[], Record<string, unknown>, Record<string, unknown>, string[]]> = [
    [['sbatch', 'head.sh'], {}, { json: false }, ['head.sh']],
    [['-w', 'lab', 'sbatch', '--only', 'A,B', '--time=1:00:00', '-p', 'long', 'head.sh', '--only', 'x'],
      { only: 'A,B' }, { json: false, workspace: 'lab' }, ['--time=1:00:00', '-p', 'long', 'head.sh', '--only', 'x']],
    [['sbatch', '--target', 'hpc', '--dir', '/p', '--json', '--hold', 'head.sh', 'a b'],
      { target: 'hpc', dir: '/p' }, { json: true }, ['--hold', 'head.sh', 'a b']],
    // `-w` after an sbatch option is sbatch's own (--nodelist)
    [['sbatch', '--hold', '-w', 'node01', 'head.sh'], {}, { json: false }, ['--hold', '-w', 'node01', 'head.sh']],
    [['sbatch', '--only=A', '--', '--only', 'head.sh'], { only: 'A' }, { json: false }, ['--only', 'head.sh']]
  ]
  for (const [argv, options, global, args] of cases) {
    const p = parseCommandLine(COMMANDS, argv)
    if (p.kind !== 'command') throw new Error('expected a command')
    t.same(p.command.path, ['sbatch'])
    t.same(p.options, options, argv.join(' '))
    t.same(p.global, global, argv.join(' '))
    t.same(p.args, args, argv.join(' '))
  }
})

t.test('sbatchArgv table: --parsable first, the user\'s words unchanged, an --export that would drop the run\'s vars widened', async t => {
  const vars = ['NXF_SECRETS_FILE', 'NXF_UUID', 'NF_SECRETS_RUN_ID']
  const cases: Array<[string[], string[]]> = [
    [['head.sh'], ['--parsable', 'head.sh']],
    [['--time=5', 'head.sh', '--export=NONE'], ['--parsable', '--time=5', 'head.sh', '--export=NONE']],
    [['--export=ALL', 'head.sh'], ['--parsable', '--export=ALL', 'head.sh']],
    [['--export=ALL,FOO=1', 'head.sh'], ['--parsable', '--export=ALL,FOO=1', 'head.sh']],
    [['--export=NONE', 'head.sh'], ['--parsable', '--export=NONE,NXF_SECRETS_FILE,NXF_UUID,NF_SECRETS_RUN_ID', 'head.sh']],
    [['--export=NIL,FOO=1', 'head.sh'], ['--parsable', '--export=NIL,FOO=1,NXF_SECRETS_FILE,NXF_UUID,NF_SECRETS_RUN_ID', 'head.sh']],
    [['--export', 'PATH', '--hold', 'head.sh'], ['--parsable', '--export', 'PATH,NXF_SECRETS_FILE,NXF_UUID,NF_SECRETS_RUN_ID', '--hold', 'head.sh']]
  ]
  for (const [user, want] of cases) t.same(sbatchArgv(user, vars), want, user.join(' '))
  for (const wait of [['--wait', 'head.sh'], ['-W', 'head.sh']]) t.throws(() => sbatchArgv(wait, vars), { code: 'NFS_ERR_USAGE' }, wait[0]!)
  t.same(sbatchArgv(['head.sh', '--wait'], vars), ['--parsable', 'head.sh', '--wait'], 'a script argument is the script\'s')
})

t.test('parseParsable table', async t => {
  t.same(parseParsable('123\n'), { line: '123', jobId: '123', cluster: null })
  t.same(parseParsable('123;west\n'), { line: '123;west', jobId: '123', cluster: 'west' })
  t.same(parseParsable('sbatch: warning: something\n77\n'), { line: '77', jobId: '77', cluster: null })
  for (const bad of ['', 'Submitted batch job 5', '12a', '-1']) t.equal(parseParsable(bad), null, JSON.stringify(bad))
})
