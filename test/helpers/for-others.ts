// Tests run the CLI as alice and bob, who must be able to read the package. From the checkout itself when they can
// (every directory above it searchable by others, the bins readable), else from a copy made readable for them: a
// checkout in /root or in a `mktemp -d` dir (0700) is common for root. A system-mode test daemon runs from it too: it
// starts children as the users (adapters/hpc/per-user-root.ts runs dist/adapters/hpc/user-tree.js as them). The copy (package.json, dist/, node_modules/,
// the addon, policies/, systemd/) is made once per build of dist/, in a fresh mkdtemp dir under the temp dir, whose
// path is kept in dist/ (inside the checkout, where no other user can change it), and shared by the test files.
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'

// As daemon.ts has them (not imported: daemon.ts imports this file).
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')
const CLI_BIN = join(ROOT, (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin['nf-secrets']!)
const DAEMON_BIN = join(ROOT, 'dist', 'daemon', 'main.js')

const POINTER = join(ROOT, 'dist', '.for-others')
const PARTS = ['package.json', 'dist', 'prebuilds', 'build', 'policies', 'systemd']

/** Whether users other than the owner can reach `path` (each directory above it searchable, itself readable). */
export function othersCanReach (path: string): boolean {
  const real = realpathSync(path)
  const st = statSync(real)
  if ((st.mode & (st.isDirectory() ? 0o005 : 0o004)) !== (st.isDirectory() ? 0o005 : 0o004)) return false
  for (let dir = dirname(real); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) return false
    if (dirname(dir) === dir) return true
  }
}

function sleepMs (ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** What the copy must match: the build of dist/ and the installed tree. */
function stamp (): string {
  const lock = join(ROOT, 'package-lock.json')
  return JSON.stringify([statSync(CLI_BIN).mtimeMs, statSync(DAEMON_BIN).mtimeMs, existsSync(lock) ? statSync(lock).mtimeMs : 0])
}

function current (): string | null {
  if (!existsSync(POINTER)) return null
  const dir = readFileSync(POINTER, 'utf8').trim()
  return existsSync(join(dir, '.stamp')) && readFileSync(join(dir, '.stamp'), 'utf8') === stamp() ? dir : null
}

function makeCopy (): string {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-test-package-'))
  for (const part of PARTS) {
    if (!existsSync(join(ROOT, part))) continue
    const r = spawnSync('cp', ['-a', join(ROOT, part), join(dir, part)], { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`copying ${part} for other users failed: ${r.stderr}`)
  }
  const modules = join(ROOT, 'node_modules')
  if (othersCanReach(modules)) {
    symlinkSync(realpathSync(modules), join(dir, 'node_modules'))
  } else {
    const r = spawnSync('cp', ['-a', modules + sep, join(dir, 'node_modules')], { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`copying node_modules for other users failed: ${r.stderr}`)
  }
  const r = spawnSync('chmod', ['-R', 'a+rX', dir], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`chmod of the copy failed: ${r.stderr}`)
  chmodSync(dir, 0o755)
  writeFileSync(join(dir, '.stamp'), stamp())
  return dir
}

let root: string | undefined

/** The package root other users run from: the checkout, or a readable copy of it (made or refreshed here). */
export function rootForOthers (): string {
  if (root !== undefined && (root === ROOT || current() === root)) return root
  if (othersCanReach(CLI_BIN) && othersCanReach(join(ROOT, 'node_modules'))) return (root = ROOT)
  const lock = join(ROOT, 'dist', '.for-others.lock')
  for (let i = 0; i < 2400; i++) {
    const ready = current()
    if (ready !== null) return (root = ready)
    try {
      mkdirSync(lock)
    } catch {
      sleepMs(250)
      continue
    }
    try {
      const stale = existsSync(POINTER) ? readFileSync(POINTER, 'utf8').trim() : null
      const made = current() ?? makeCopy()
      writeFileSync(POINTER, made)
      if (stale !== null && stale !== made && stale.startsWith(join(tmpdir(), 'nfs-test-package-'))) rmSync(stale, { recursive: true, force: true })
      return (root = made)
    } finally {
      rmSync(lock, { recursive: true, force: true })
    }
  }
  throw new Error('timed out waiting for another test to copy the package for other users')
}

/** `path` as other users reach it (a path inside the checkout may move to the copy; anything else stays). */
export function forOthers (path: string): string {
  if (!path.startsWith(ROOT + sep)) return path
  const base = rootForOthers()
  return base === ROOT ? path : join(base, relative(ROOT, path))
}
