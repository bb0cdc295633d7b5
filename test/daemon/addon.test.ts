// The native addon: found by node-gyp-build (a local compile, else the prebuilt binary for this platform); a missing
// or damaged one is NFS_ERR_ADDON naming the file, and the daemon refuses to start with it (exit 78) before it reads or
// creates anything, rather than answering every call with "could not be identified". Re-running the install script
// (as `npx nf-secrets` in a clone does) keeps a working addon instead of deleting build/ to recompile.
import t from 'tap'
import { execFile } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { addonFile, loadNative } from '../../daemon/os/native.js'
import { ensureBuilt, ROOT, tempDir } from '../helpers/daemon.js'
import { errorCode, runNode } from '../helpers/cli.js'

const exec = promisify(execFile)

/** A package root holding only package.json (and whatever the test adds). */
function bareRoot (t: Parameters<typeof tempDir>[0]): string {
  const dir = tempDir(t, 'nfs-addon-')
  cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'))
  return dir
}

t.test('the addon this checkout loads has every function the daemon calls', async (t) => {
  const addon = loadNative(ROOT)
  for (const fn of ['peercred', 'getpwuid', 'getpwnam', 'getgrgid', 'getgrnam', 'getgrouplist', 'cloexec', 'cloexecFrom', 'lockExclusive'] as const) {
    t.equal(typeof addon[fn], 'function', fn)
  }
  t.equal(addon.getpwuid(process.getuid!())?.uid, process.getuid!())
})

t.test('no addon for this platform: NFS_ERR_ADDON naming where it looked', async (t) => {
  const root = bareRoot(t)
  const err = t.throws(() => addonFile(root)) as { code?: string, message?: string }
  t.equal(err.code, 'NFS_ERR_ADDON')
  t.ok(err.message?.includes(join(root, 'prebuilds', `${process.platform}-${process.arch}`)), 'the message names the prebuilds dir it tried')
})

t.test('a damaged addon: NFS_ERR_ADDON naming the file', async (t) => {
  const root = bareRoot(t)
  mkdirSync(join(root, 'build', 'Release'), { recursive: true })
  const file = join(root, 'build', 'Release', 'nfs_native.node')
  writeFileSync(file, 'not an ELF file')
  const err = t.throws(() => loadNative(root)) as { code?: string, message?: string }
  t.equal(err.code, 'NFS_ERR_ADDON')
  t.ok(err.message?.includes(file), 'the message names the file')
})

t.test('the daemon without its addon stops with exit 78 and NFS_ERR_ADDON before it creates its state dir', async (t) => {
  ensureBuilt()
  const root = bareRoot(t)
  cpSync(join(ROOT, 'dist'), join(root, 'dist'), { recursive: true })
  symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'))
  const stateDir = join(root, 'state')
  const r = await runNode(join(root, 'dist', 'daemon', 'main.js'), ['--mode', 'user', '--state-dir', stateDir, '--socket', join(root, 'api.sock')],
    { env: { HOME: root, XDG_CONFIG_HOME: join(root, 'config') }, timeoutMs: 20_000 })
  t.equal(r.code, 78, r.stderr)
  t.equal(errorCode(r.stderr), 'NFS_ERR_ADDON')
  t.notOk(existsSync(stateDir), 'nothing was created')
  t.notOk(existsSync(join(root, 'api.sock')), 'no socket')
})

t.test('re-running the install script keeps a working addon (no delete-and-recompile)', async (t) => {
  const root = bareRoot(t)
  for (const rel of ['binding.gyp', 'native']) cpSync(join(ROOT, rel), join(root, rel), { recursive: true })
  symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'))
  mkdirSync(join(root, 'build', 'Release'), { recursive: true })
  const file = join(root, 'build', 'Release', 'nfs_native.node')
  cpSync(addonFile(ROOT), file)
  const before = statSync(file)
  // No Node headers and no compiler reachable: a script that recompiled could not succeed here.
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: root, npm_config_nodedir: join(root, 'no-headers'), CC: 'false', CXX: 'false' }
  await exec('npm', ['run', 'install', '--ignore-scripts=false'], { cwd: root, env })
  const after = statSync(file)
  t.equal(after.ino, before.ino, 'the same file')
  t.equal(after.mtimeMs, before.mtimeMs, 'untouched')
  t.equal(loadNative(root).getpwuid(0)?.name, 'root', 'and it still loads')
})
