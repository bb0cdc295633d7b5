// The package as an admin gets it: `npm pack`, then `npm install -g` of the tarball into a temporary prefix, with no
// devDependencies around and nothing to compile: the addon comes prebuilt (prebuilds/), node-pty too
// (@lydell/node-pty's platform package), and no dependency asks for a newer Node than we promise. Node's headers and a
// compiler are made unreachable, so an install that tried to compile would fail here. The installed bins must run,
// the unit files must be there, and the installed daemon must answer on its socket, with peer credentials read by
// the prebuilt addon.
import t from 'tap'
import { execFile, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'
import { promisify } from 'node:util'
import { call, ensureBuilt, ROOT } from '../helpers/daemon.js'

const exec = promisify(execFile)
// Packing and installing take a minute or two on a small, busy machine.
t.setTimeout(600_000)

/** npm's own variables from an enclosing `npm test` would steer the inner npm (prefix, global, scripts). */
function cleanEnv (): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if ((k.toLowerCase().startsWith('npm_') && k.toLowerCase() !== 'npm_config_cache') || k === 'NODE_OPTIONS') continue
    env[k] = v
  }
  return env
}

t.test('npm pack, npm install -g into a temporary prefix, run both bins and the daemon', async (t) => {
  ensureBuilt()
  const work = mkdtempSync(join(tmpdir(), 'nfs-package-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  const env = cleanEnv()
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version

  // `npm test` has just built dist/: pack it as it is (--ignore-scripts), rather than rebuild dist/ under the feet
  // of the other test files that run the daemon from it. A plain `npm pack` builds first through `prepare`.
  const packed = await exec('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: ROOT, env, maxBuffer: 64 * 1024 * 1024 })
  const [info] = JSON.parse(packed.stdout) as Array<{ filename: string, files: Array<{ path: string }> }>
  const files = new Set(info!.files.map(f => f.path))
  for (const needed of ['binding.gyp', 'native/nfs_native.c', 'native/source-hash.mjs',
    'prebuilds/linux-x64/nf-secretsd.glibc.node', 'prebuilds/linux-arm64/nf-secretsd.glibc.node', 'dist/daemon/main.js', 'dist/daemon/cli/nf-secrets.cjs', 'dist/daemon/metrics.js',
    'systemd/nf-secretsd.service', 'systemd/nf-secretsd.socket', 'systemd/user/nf-secretsd.service', 'policies/launcher.json',
    'docs/install.md', 'docs/errors.md', 'docs/config.md', 'docs/security.md', 'docs/usage.md']) {
    t.ok(files.has(needed), `the tarball holds ${needed}`)
  }
  t.notOk([...files].some(f => f.startsWith('test/') || f.startsWith('build/') || f.startsWith('node_modules/') || f.endsWith('.ts')),
    'no tests, no local build, no sources to compile')

  // The deps come from npm's cache (`npm ci` filled it); the network is used only if something is missing there.
  const prefix = join(work, 'prefix')
  const tarball = join(work, info!.filename)
  // No Node headers (root's ~/.npmrc may point nodedir at /usr) and no compiler: nothing may need them.
  const noBuild = { ...env, npm_config_nodedir: join(work, 'no-node-headers'), CC: 'false', CXX: 'false' }
  const installed = await exec('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: work, env: noBuild, maxBuffer: 64 * 1024 * 1024 })
  t.notMatch(installed.stderr, /EBADENGINE/, 'no dependency asks for another Node')
  const pkgDir = join(prefix, 'lib', 'node_modules', 'nf-secretsd')
  t.notOk(existsSync(join(pkgDir, 'build')), 'nothing was compiled: the prebuilt addon loaded')
  t.ok(existsSync(join(pkgDir, 'node_modules', '@lydell', `node-pty-linux-${process.arch}`)), 'node-pty came prebuilt')
  const lmr = JSON.parse(readFileSync(join(pkgDir, 'node_modules', 'light-my-request', 'package.json'), 'utf8')) as { version: string }
  t.match(lmr.version, /^6\.6\./, 'light-my-request is held below 6.8 (its cookie 2 needs Node 22)')
  t.ok(existsSync(join(pkgDir, 'systemd', 'nf-secretsd.service')), 'the unit files are installed')
  t.notOk(existsSync(join(pkgDir, 'node_modules', 'typescript')), 'no devDependency was needed')

  const bin = (name: string): string => join(prefix, 'bin', name)
  const v = await exec(bin('nf-secretsd'), ['--version'], { env })
  t.equal(v.stdout.trim(), version, 'nf-secretsd --version')
  const help = await exec(bin('nf-secrets'), ['--help'], { env })
  t.match(help.stdout, /secrets/, 'nf-secrets --help prints the commands')
  const dhelp = await exec(bin('nf-secretsd'), ['--help'], { env })
  t.match(dhelp.stdout, /check-config/)

  // The installed daemon runs: health and whoami (peer credentials through the addon built above).
  const socket = join(work, 'run', 'api.sock')
  const daemon = spawn(bin('nf-secretsd'), ['--mode', 'user', '--state-dir', join(work, 'state'), '--socket', socket], {
    env: { ...env, HOME: work, XDG_CONFIG_HOME: join(work, 'config') },
    stdio: ['ignore', 'ignore', 'inherit']
  })
  const exited = once(daemon, 'exit')
  t.teardown(async () => { if (daemon.exitCode === null && daemon.signalCode === null) { daemon.kill('SIGKILL'); await exited } })
  let who
  for (let i = 0; i < 600 && who === undefined; i++) {
    who = await call(socket, 'GET', '/api/v1/whoami').catch(() => undefined)
    if (who === undefined) await new Promise(resolve => setTimeout(resolve, 100))
  }
  t.equal(who?.status, 200, 'the installed daemon answers')
  t.equal(who?.body.uid, process.getuid!(), 'and knows who called through SO_PEERCRED')
  // The installed CLI (one bundled file, scripts/bundle-cli.mjs) finds the addon and node-gyp-build from its install.
  const cliWho = await exec(bin('nf-secrets'), ['--socket', socket, 'whoami', '--json'], { env })
  t.equal((JSON.parse(cliWho.stdout) as { uid: number }).uid, process.getuid!(), 'the installed nf-secrets asks it, its peer checked by the addon')
  daemon.kill('SIGTERM')
  t.same(await exited, [0, null], 'and stops cleanly')
})
