// The pure parts of launching through systemd (daemon/pty/transient-unit.ts): the unit's name, systemd's `$`
// expansion undone, the wrapper's argv, and when the daemon uses it at all. The real thing (a booted systemd 252,
// the command as alice in her slice) is tested in test/container/journey.container.ts.
import t from 'tap'
import { CREDENTIAL, detectSystemdRun, execArg, transientArgs, unitName } from '../../daemon/pty/transient-unit.js'

t.test('systemd\'s $ expansion is undone in every argument', async t => {
  const table: Array<[string, string]> = [
    ['plain', 'plain'],
    ['$HOME', '$$HOME'],
    ['${USER}x', '$${USER}x'],
    ['$$', '$$$$'],
    ['a $ b', 'a $$ b'],
    ['%h;\\', '%h;\\']
  ]
  for (const [arg, want] of table) t.equal(execArg(arg), want, arg)
})

t.test('the wrapper\'s argv: the caller\'s identity, the credential, the command with nothing expanded', async t => {
  const argv = transientArgs({
    systemdRun: '/usr/bin/systemd-run',
    shell: '/bin/sh',
    runId: 'AbC123',
    identity: { uid: 1001, gid: 1001, gids: [1001, 1004, 1004] },
    envFile: '/var/lib/nf-secretsd/launch/alice/AbC123.env',
    statusFile: '/var/lib/nf-secretsd/launch/alice/AbC123.exit',
    launchDir: '/home/alice/$proj',
    command: ['nextflow', 'run', 'main.nf', '--greeting', '$HOME']
  })
  t.same(argv.slice(0, 1), ['-c'])
  t.same(argv.slice(2, 6), ['nfs-launch', '/var/lib/nf-secretsd/launch/alice/AbC123.env', '/var/lib/nf-secretsd/launch/alice/AbC123.exit', '/usr/bin/systemd-run'])
  const sep = argv.indexOf('--')
  const options = argv.slice(6, sep)
  for (const o of ['--wait', '--collect', '--quiet', `--unit=${unitName('AbC123')}`, '--uid=1001', '--gid=1001', '--slice=user-1001.slice',
    '--property=SupplementaryGroups=1004', '--property=StandardInput=tty-force', `--property=LoadCredential=${CREDENTIAL}:/var/lib/nf-secretsd/launch/alice/AbC123.env`]) {
    t.ok(options.includes(o), o)
  }
  t.notOk(options.includes('--pty'), 'the unit gets the wrapper\'s own terminal, not a second one')
  t.notOk(options.some(o => o.startsWith('--setenv') || o.startsWith('-E') || o.startsWith('--property=Environment')), 'no environment on the command line')
  const inner = argv.slice(sep + 1)
  t.same(inner.slice(0, 2), ['/bin/sh', '-c'])
  t.same(inner.slice(3), ['nfs-run', '/home/alice/$$proj', 'nextflow', 'run', 'main.nf', '--greeting', '$$HOME'])
  t.notOk(/(^|[^$])\$[A-Za-z{"(]/.test(inner[2]!.replaceAll('$$', '')), 'the inner script\'s own $ are doubled too')
})

t.test('the unit name is the run\'s', async t => {
  t.equal(unitName('x9Y'), 'nf-secrets-launch-x9Y.service')
})

t.test('through systemd only as root, as the process systemd started for a unit, with systemd-run installed', async t => {
  const bootedHere = (await import('node:fs')).existsSync('/run/systemd/system')
  const unit = { SYSTEMD_EXEC_PID: '4242', INVOCATION_ID: 'abc' }
  t.equal(detectSystemdRun({}, 0, 4242, ['/bin/sh']), null, 'not started by systemd')
  t.equal(detectSystemdRun(unit, 0, 5151, ['/bin/sh']), null, 'a child of a unit\'s process (a test, a shell): not the unit itself')
  t.equal(detectSystemdRun(unit, 1000, 4242, ['/bin/sh']), null, 'not root: user mode')
  t.equal(detectSystemdRun(unit, 0, 4242, ['/nonexistent/systemd-run']), null, 'no systemd-run')
  t.equal(detectSystemdRun(unit, 0, 4242, ['/bin/sh']), bootedHere ? '/bin/sh' : null, 'a booted systemd')
})
