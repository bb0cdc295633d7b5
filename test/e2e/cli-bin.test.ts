// The `nf-secrets` bin as the package ships it (package.json's bin: one CommonJS bundle, scripts/bundle-cli.mjs) loads
// only what a call needs (issue 17: a call within 2 x a bare `node -e 0`). Asserted on what the process loaded, never
// on time: no ESM loader, none of the builtins a bare node does not load and the CLI never uses (an ESM `import` of
// node:fs, or touching process.stdin, loads fs/promises, fs streams and readline), and of the package's own files
// only the bin itself and the addon. The speed is measured in bench/ (cli-bench.ts).
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { CLI_BIN, NO_TAP_HOOKS, ROOT, startTestDaemon, tempDir } from '../helpers/daemon.js'

interface Loaded { builtins: string[], files: string[] }

// Preloaded with --require: at exit, the builtins this process loaded and the files in require's cache.
const RECORDER = `
process.on('exit', () => {
  require('node:fs').writeFileSync(process.env.NFS_LOADED_OUT, JSON.stringify({ builtins: process.moduleLoadList, files: Object.keys(require.cache) }))
})
`

function run (dir: string, script: string[], args: string[]): { code: number | null, stdout: string, stderr: string, loaded: Loaded } {
  const recorder = join(dir, 'recorder.cjs')
  const out = join(dir, `loaded-${Math.random().toString(36).slice(2)}.json`)
  writeFileSync(recorder, RECORDER)
  const r = spawnSync(NO_TAP_HOOKS[0]!, [...NO_TAP_HOOKS.slice(1), process.execPath, '--require', recorder, ...script, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, LANG: 'C.UTF-8', NFS_LOADED_OUT: out },
    encoding: 'utf8',
    // stdin as the bench has it: /dev/null, which process.stdin would open as an fs stream
    stdio: ['ignore', 'pipe', 'pipe']
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, loaded: JSON.parse(readFileSync(out, 'utf8')) as Loaded }
}

t.test('`nf-secrets whoami` through the shipped bin loads no ESM loader, no unused builtins, no other file of ours', async t => {
  const daemon = await startTestDaemon(t, { mode: 'user' })
  const dir = tempDir(t)
  const bare = run(dir, ['-e', '0'], [])
  const cli = run(dir, [CLI_BIN], ['--socket', daemon.socket, 'whoami', '--json'])
  t.equal(cli.code, 0, cli.stderr)
  t.equal((JSON.parse(cli.stdout) as { uid: number }).uid, process.getuid!(), 'the answer, with the peer checked through the addon')

  const extra = cli.loaded.builtins.filter(m => !bare.loaded.builtins.includes(m))
  t.same(extra.filter(m => m.includes('internal/modules/esm/')), [], 'the ESM loader never started')
  t.same(extra.filter(m => /internal\/fs\/(promises|streams|dir)$|internal\/readline\//.test(m)), [],
    'neither fs/promises, fs streams nor readline was loaded')

  const ours = cli.loaded.files.filter(f => f.startsWith(ROOT) && !f.includes('/node_modules/')).map(f => relative(ROOT, f))
  t.same(ours.filter(f => /\.[cm]?js$/.test(f)), [relative(ROOT, CLI_BIN)], 'of the package\'s JavaScript, the bin alone')
})

t.test('help, version and a usage error through the shipped bin', async t => {
  const dir = tempDir(t)
  const help = run(dir, [CLI_BIN], ['--help'])
  t.equal(help.code, 0, help.stderr)
  t.match(help.stdout, /secrets/)
  const version = run(dir, [CLI_BIN], ['--version'])
  t.equal(version.stdout.trim(), (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version)
  const typo = run(dir, [CLI_BIN], ['whoam', '--json'])
  t.equal(typo.code, 2, 'a usage error exits 2')
  t.match(JSON.parse(typo.stderr.trim()), { code: 'NFS_ERR_USAGE' }, 'as one JSON line with --json')
})
