// `shell-init`: the nextflow function in real bash and zsh sees `nextflow [global options] run ...` and passes every
// argument on unchanged (spaces, quotes, `$`, globs, empty words: nothing is split, expanded or run). A fake
// `nextflow` on PATH records what it got; a fake `nf-secrets` records that the run went through it, then runs the
// rest as the real one would. One end-to-end run goes through the real CLI and a real daemon.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { isRunInvocation, shellInit } from '../../daemon/cli/shell-init.js'
import { runCli } from '../helpers/cli.js'
import { call, CLI_BIN, startTestDaemon, tempDir } from '../helpers/daemon.js'

const SHELLS = (['bash', 'zsh'] as const).map(name => ({ name, path: ['/usr/bin', '/bin'].map(d => join(d, name)).find(p => existsSync(p)) }))

// [argv after `nextflow`, goes through nf-secrets run]
const TABLE: Array<[string[], boolean]> = [
  [['run', 'main.nf'], true],
  [['-bg', 'run', 'main.nf', '-profile', 'test'], true],
  [['-c', 'my.config', 'run', 'main.nf'], true],
  [['-config', 'my.config', 'run', 'main.nf'], true],
  [['-C', 'only.config', 'run', 'nf-core/rnaseq', '-r', '3.14.0'], true],
  [['-log', '/tmp/x.log', '-q', 'run', 'main.nf'], true],
  [['-quiet', '-bg', '-Dfoo=bar', 'run', 'x'], true],
  [['-D', 'foo=bar', 'run', 'x'], true],
  [['-trace', 'nextflow.secret', 'run', 'x'], true],
  [['-syslog', 'run', 'x'], true],
  [['-syslog', 'loghost:514', 'run', 'x'], true],
  [['-dockerize', 'run', 'x'], true],
  [['-config-ignore-includes', '-remote-debug', 'run', 'x'], true],
  [['-c', 'run', 'info'], false],
  [['-log', 'run'], false],
  [['-c'], false],
  [['info'], false],
  [['log', 'run'], false],
  [['secrets', 'list'], false],
  [['-version'], false],
  [['-v', 'run', 'x'], false],
  [['-h', 'run'], false],
  [['-self-update'], false],
  [['self-update'], false],
  [[], false],
  [['-bg'], false]
]

// Words a shell would split, expand, glob or run if the function let it.
const NASTY = ['has space', '', "it's", '"dq"', '$HOME', '$(touch PWNED)', '`touch PWNED`', '*', '; touch PWNED', 'a\nb', '\\t', '--', '-bg']

t.test('isRunInvocation: the table', async t => {
  for (const [args, want] of TABLE) t.equal(isRunInvocation(args), want, args.join(' ') || '(nothing)')
})

function fakeBin (dir: string): { bin: string, argsFile: string, viaFile: string } {
  const bin = join(dir, 'bin')
  mkdirSync(bin)
  const argsFile = join(dir, 'nextflow.args')
  const viaFile = join(dir, 'via')
  // NUL-separated, so that every argument comes back exactly, newlines and empty words included
  writeFileSync(join(bin, 'nextflow'), `#!/bin/sh\n: > '${argsFile}'\nfor a in "$@"; do printf '%s\\0' "$a" >> '${argsFile}'; done\nprintf '%s' "\${NF_SECRETS_RUN_ID-}" > '${argsFile}.run'\n`)
  writeFileSync(join(bin, 'nf-secrets'), `#!/bin/sh\n[ "$1" = run ] && [ "$2" = -- ] || exit 99\nprintf via > '${viaFile}'\nshift 2\nNF_SECRETS_RUN_ID=fake exec "$@"\n`)
  chmodSync(join(bin, 'nextflow'), 0o755)
  chmodSync(join(bin, 'nf-secrets'), 0o755)
  return { bin, argsFile, viaFile }
}

function runInShell (shell: string, init: string, dir: string, bin: string, args: string[], env: NodeJS.ProcessEnv = {}): number | null {
  // The arguments reach the shell as its own positional parameters, then the function gets them as "$@".
  const script = 'eval "$(cat "$NFS_INIT")"; nextflow "$@"'
  writeFileSync(join(dir, 'init.sh'), init)
  const argv = shell.endsWith('zsh') ? ['-f', '-c', script, 'zsh', ...args] : ['--norc', '--noprofile', '-c', script, 'bash', ...args]
  const r = spawnSync(shell, argv, { cwd: dir, env: { PATH: `${bin}:/usr/bin:/bin`, NFS_INIT: join(dir, 'init.sh'), ...env }, encoding: 'utf8' })
  return r.status
}

for (const sh of SHELLS) {
  t.test(`${sh.name}: the function wraps exactly the runs and passes every argument on unchanged`, { skip: sh.path === undefined ? `${sh.name} is not installed (apt-get install ${sh.name}; .ci/run installs it)` : false }, async t => {
    const dir = tempDir(t, `nfs-shell-init-${sh.name}-`)
    const { bin, argsFile, viaFile } = fakeBin(dir)
    const cases: Array<[string[], boolean]> = [...TABLE, [['-c', 'a b.config', 'run', ...NASTY], true], [NASTY, false], [['info', ...NASTY], false]]
    for (const [args, wrapped] of cases) {
      for (const f of [argsFile, `${argsFile}.run`, viaFile]) if (existsSync(f)) writeFileSync(f, '') // emptied, not removed: a stale record would read as empty
      const status = runInShell(sh.path!, shellInit(sh.name), dir, bin, args)
      const label = args.join(' ') || '(nothing)'
      t.equal(status, 0, `${label}: exit status`)
      const got = readFileSync(argsFile, 'utf8')
      t.same(got === '' ? [] : got.slice(0, -1).split('\0'), args, `${label}: arguments unchanged`)
      t.equal(existsSync(viaFile) && readFileSync(viaFile, 'utf8') === 'via', wrapped, `${label}: ${wrapped ? 'through nf-secrets run' : 'straight to nextflow'}`)
    }
    t.notOk(existsSync(join(dir, 'PWNED')), 'nothing in an argument was run')

    // Inside a run (the env nf-secrets run gives its child) a nested nextflow run goes straight through.
    writeFileSync(viaFile, '')
    t.equal(runInShell(sh.path!, shellInit(sh.name), dir, bin, ['-bg', 'run', 'x'], { NF_SECRETS_RUN_ID: 'outer' }), 0)
    t.equal(readFileSync(viaFile, 'utf8'), '', 'not wrapped twice')
  })
}

t.test('end to end: `nextflow -bg -c F run ...` in bash through the real CLI and daemon gets a run', { skip: SHELLS[0]!.path === undefined ? 'bash is not installed' : false }, async t => {
  const daemon = await startTestDaemon(t, { mode: 'user' })
  const env = { NF_SECRETS_SOCKET: daemon.socket, HOME: process.env.HOME }
  t.equal((await runCli(['secrets', 'add', 'SHELL_INIT_TOKEN'], { input: 'v-1\n', env })).code, 0)
  const dir = tempDir(t, 'nfs-shell-init-e2e-')
  const { bin, argsFile } = fakeBin(dir)
  // the real CLI as `nf-secrets`, without tap's loader hooks
  writeFileSync(join(bin, 'nf-secrets'), `#!/bin/sh\nexec env -u NODE_OPTIONS '${process.execPath}' '${CLI_BIN}' "$@"\n`)
  const init = (await runCli(['shell-init', 'bash'], { env })).stdout
  const args = ['-bg', '-c', 'my config.config', 'run', 'main.nf', '--greeting', '$HOME `x`']
  t.equal(runInShell(SHELLS[0]!.path!, init, dir, bin, args, env), 0)
  t.same(readFileSync(argsFile, 'utf8').slice(0, -1).split('\0'), args, 'arguments unchanged')
  const runId = readFileSync(`${argsFile}.run`, 'utf8')
  t.match(runId, /^\S+$/, 'nextflow ran inside a run')
  const runs = await call(daemon.socket, 'GET', `/api/v1/runs/${runId}`)
  t.equal(runs.status, 200)
  t.same(runs.body.names, ['SHELL_INIT_TOKEN'])
})
