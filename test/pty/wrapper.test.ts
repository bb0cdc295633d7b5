// The pure parts of launched runs: the replay ring, the environment file (evaluated by a real shell), exit statuses,
// /proc stat ids, the attach protocol's input messages and the CLI's detach key and exit status.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { RingBuffer } from '../../daemon/pty/ring-buffer.js'
import { CLOSE_INHERITED, DEFAULT_TERM, EXIT_WRAPPER, envFileText, exitFromPty, exitFromStatus, parseStatusFile, privilegeArgs, terminalName, wrapperArgs } from '../../daemon/pty/wrapper.js'
import { native } from '../../daemon/os/native.js'
import { parseStatIds } from '../../daemon/pty/process-group.js'
import { parseInMessage } from '../../daemon/api/attach.js'
import { exitStatusOf, launchEnv, splitAtDetach } from '../../daemon/cli/launch.js'

t.test('ring buffer keeps the last bytes in order', async t => {
  const r = new RingBuffer(8)
  t.equal(r.contents().length, 0)
  r.push(Buffer.from('abc'))
  t.equal(r.contents().toString(), 'abc')
  r.push(Buffer.from('defgh'))
  t.equal(r.contents().toString(), 'abcdefgh', 'exactly full')
  r.push(Buffer.from('ij'))
  t.equal(r.contents().toString(), 'cdefghij', 'wraps, oldest first')
  r.push(Buffer.from('0123456789XYZ'))
  t.equal(r.contents().toString(), '6789XYZ'.padStart(8, '5'), 'a chunk larger than the ring leaves its tail')
  t.equal(r.size, 8)
  t.throws(() => new RingBuffer(0))
})

t.test('the environment file evaluates to exactly the given environment in a real shell', async t => {
  const env = {
    PLAIN: 'value',
    QUOTES: 'it\'s "quoted" $HOME `id` $(id) \\ back',
    NEWLINES: 'line1\nline2\n',
    EMPTY: '',
    'BAD-NAME': 'x',
    'BASH_FUNC_f%%': '() { id; }',
    UID: '0'
  }
  const { text, dropped } = envFileText(env)
  t.same(dropped.sort(), ['BAD-NAME', 'BASH_FUNC_f%%', 'UID'].sort())
  // The wrapper reads it on fd 3; stdin is the same kind of pipe.
  const r2 = spawnSync('/bin/sh', ['-c', 'eval "$(cat)"; env -0'], { env: { PATH: '/usr/bin:/bin' }, input: text })
  t.equal(r2.status, 0, r2.stderr?.toString())
  const got = Object.fromEntries(r2.stdout.toString().split('\0').filter(Boolean).map(l => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
  for (const k of ['PLAIN', 'QUOTES', 'NEWLINES', 'EMPTY']) t.equal(got[k], env[k as keyof typeof env], k)
  t.notOk('BAD-NAME' in got)
})

t.test('wrapper argv: identity flags, no environment, the command verbatim', async t => {
  t.same(privilegeArgs({ uid: 1001, gid: 1001, gids: [1001, 1003, 1003] }), ['--reuid=1001', '--regid=1001', '--groups=1001,1003'])
  const argv = wrapperArgs({ shell: '/bin/sh', setpriv: '/usr/bin/setpriv', identity: { uid: 5, gid: 6, gids: [7] }, envFile: '/s/e', statusFile: '/s/x', launchDir: '/d', command: ['nextflow', 'run', 'x y'] })
  t.equal(argv[0], '-c')
  t.same(argv.slice(2, 9), ['nfs-launch', '/s/e', '/s/x', '/usr/bin/setpriv', '--reuid=5', '--regid=6', '--groups=6,7'])
  t.same(argv.slice(-4), ['/d', 'nextflow', 'run', 'x y'])
  const user = wrapperArgs({ shell: '/bin/sh', setpriv: null, identity: { uid: 5, gid: 6, gids: [] }, envFile: '/e', statusFile: '/x', launchDir: '/d', command: ['a'] })
  t.notOk(user.some(a => a.includes('setpriv')), 'no setpriv when no identity change')
})

t.test('exit statuses', async t => {
  t.same(exitFromStatus(0), { exitCode: 0, signal: null })
  t.same(exitFromStatus(3), { exitCode: 3, signal: null })
  t.same(exitFromStatus(143), { exitCode: 143, signal: 'SIGTERM' })
  t.same(exitFromStatus(137), { exitCode: 137, signal: 'SIGKILL' })
  t.same(exitFromPty(0, 9), { exitCode: 137, signal: 'SIGKILL' })
  t.same(exitFromPty(5, 0), { exitCode: 5, signal: null })
  t.equal(parseStatusFile('0\n'), 0)
  t.equal(parseStatusFile('143\n'), 143)
  t.equal(parseStatusFile('256\n'), null)
  t.equal(parseStatusFile('1; rm -rf /'), null)
  t.equal(parseStatusFile(''), null)
})

t.test('/proc stat ids survive a comm with spaces and parentheses', async t => {
  t.same(parseStatIds('123 (a) b (c)) S 1 77 88 0 -1'), { pid: 123, pgrp: 77, session: 88 })
  t.equal(parseStatIds('garbage'), null)
})

t.test('attach input messages', async t => {
  t.same(parseInMessage('{"type":"input","data":"ls\\r"}'), { type: 'input', data: 'ls\r' })
  t.same(parseInMessage('{"type":"resize","cols":100,"rows":30}'), { type: 'resize', cols: 100, rows: 30 })
  t.equal(parseInMessage('{"type":"resize","cols":0,"rows":30}'), null)
  t.equal(parseInMessage('{"type":"resize","cols":1.5,"rows":30}'), null)
  t.equal(parseInMessage('{"type":"input","data":5}'), null)
  t.equal(parseInMessage('not json'), null)
  t.equal(parseInMessage('null'), null)
})

t.test('CLI: detach key, exit status, environment', async t => {
  t.same(splitAtDetach(Buffer.from('ab\x1dcd')), { send: Buffer.from('ab'), detach: true })
  t.same(splitAtDetach(Buffer.from('abc')), { send: Buffer.from('abc'), detach: false })
  t.equal(exitStatusOf({ exitCode: 3, signal: null }), 3)
  t.equal(exitStatusOf({ exitCode: null, signal: 'SIGKILL' }), 137)
  t.equal(exitStatusOf({ exitCode: null, signal: null }), 1)
  t.same(launchEnv({ A: '1', B: undefined }), { A: '1' })
})

t.test('TERM for the wrapper: a terminfo name or the default', async t => {
  const cases: Array<[string | undefined, string]> = [
    ['xterm-256color', 'xterm-256color'],
    ['screen.xterm-256color', 'screen.xterm-256color'],
    ['rxvt-unicode+x', 'rxvt-unicode+x'],
    [undefined, DEFAULT_TERM],
    ['', DEFAULT_TERM],
    ['xterm; id', DEFAULT_TERM],
    ['$(id)', DEFAULT_TERM],
    ['-xterm', DEFAULT_TERM],
    ['../../x', DEFAULT_TERM],
    ['x'.repeat(65), DEFAULT_TERM],
    ['xterm\nLD_PRELOAD=/tmp/x.so', DEFAULT_TERM]
  ]
  for (const [given, want] of cases) t.equal(terminalName(given), want, JSON.stringify(given))
})

t.test('the wrapper closes inherited fds 3-9 and refuses to start with any other fd open', async t => {
  // As the daemon does before a spawn: nothing of this process (tap's own fds) reaches the shell unasked.
  native().cloexecFrom(3)
  const extra = openSync('/dev/null', 'r')
  t.teardown(() => closeSync(extra))
  const script = `${CLOSE_INHERITED}; ls /proc/$$/fd`
  const fds = (r: ReturnType<typeof spawnSync>): number[] => r.stdout!.toString().trim().split('\n').map(Number).sort((a, b) => a - b)
  const plain = spawnSync('/bin/sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.equal(plain.status, 0)
  t.same(fds(plain), [0, 1, 2])
  const low = spawnSync('/bin/sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe', extra, 'ignore', extra, 'ignore', 'ignore', 'ignore', extra] })
  t.equal(low.status, 0, 'fds 3, 5 and 9 are closed')
  t.same(fds(low), [0, 1, 2])
  const high = ['ignore', 'pipe', 'pipe', ...Array<'ignore'>(9).fill('ignore'), extra] as const
  const r = spawnSync('/bin/sh', ['-c', `${script}; echo ran`], { stdio: [...high] })
  t.equal(r.status, EXIT_WRAPPER, 'fd 12 cannot be closed by a POSIX shell: nothing runs')
  t.notMatch(r.stdout!.toString(), /ran/)
})
