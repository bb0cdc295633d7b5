// A real systemd (the machine's own) booted with systemd-nspawn over a private overlay of /, for the tests that must
// see the daemon exactly as its unit starts it. The shell side is scripts/ci/systemd-container/ (up, in, down);
// this file packs the project as a release would, boots, runs commands inside as any user, and tears down.
// Root only, and only on a machine whose PID 1 is not systemd (CI's image): skipReason() says why not otherwise.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const SCRIPTS = join(ROOT, 'scripts', 'ci', 'systemd-container')

export interface Result { code: number | null, stdout: string, stderr: string }

export interface ExecOptions {
  /** run as this user (a login's HOME, USER, LOGNAME); root when absent */
  user?: string
  /** written to stdin, then closed */
  input?: string
  timeoutMs?: number
}

function version (cmd: string): string | null {
  try {
    return /systemd (\d+)/.exec(execFileSync(cmd, ['--version'], { encoding: 'utf8' }))?.[1] ?? null
  } catch {
    return null
  }
}

/** Why this machine cannot boot the container, or null when it can. */
export function skipReason (): string | null {
  if (process.getuid?.() !== 0) return 'needs root (it mounts an overlay and boots systemd-nspawn)'
  if (existsSync('/run/systemd/system')) return 'the machine runs systemd itself; the harness is for machines that do not (CI\'s image)'
  const nspawn = version('systemd-nspawn')
  if (nspawn === null) return 'systemd-nspawn is missing: apt-get install systemd-container pinned to the machine\'s systemd (see .ci/run)'
  const systemd = version('systemctl')
  if (nspawn !== systemd) return `systemd-nspawn ${nspawn} differs from the machine's systemd ${systemd ?? 'none'}: install systemd-container pinned to it`
  return null
}

function run (cmd: string, args: string[], opts: ExecOptions & { env?: NodeJS.ProcessEnv, cwd?: string } = {}): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd ?? '/', stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (c: Buffer) => out.push(c))
    child.stderr.on('data', (c: Buffer) => err.push(c))
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') })
    })
    child.stdin.on('error', () => {})
    child.stdin.end(opts.input ?? '')
  })
}

async function must (cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<string> {
  const r = await run(cmd, args, opts)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code ?? 'by signal'}: ${r.stderr.slice(-2000)}`)
  return r.stdout
}

export interface Packed {
  /** the tarball, as `npm pack` makes it for a release */
  tarball: string
  remove: () => void
}

/**
 * `npm pack` of the built checkout, and npm's cache made ready for an offline `npm install -g` of it: the container
 * has no network (--private-network), so every package the install resolves must be in the machine's npm cache.
 * An install into a throwaway prefix fills it (from the registry only what the cache lacks).
 */
export async function packForContainer (): Promise<Packed> {
  const dir = mkdtempSync('/var/tmp/nfs-pack.')
  const remove = (): void => rmSync(dir, { recursive: true, force: true })
  try {
    // dist/ is built by the npm script that runs the suite; prepare would only build it again.
    await must('npm', ['pack', '--ignore-scripts', '--pack-destination', dir], { cwd: ROOT, timeoutMs: 120_000 })
    const tgz = readdirSync(dir).find(f => f.endsWith('.tgz'))
    if (tgz === undefined) throw new Error('npm pack made no tarball')
    const tarball = join(dir, tgz)
    await must('npm', ['install', '-g', '--prefix', join(dir, 'warm'), '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', tarball],
      { cwd: dir, timeoutMs: 300_000 })
    rmSync(join(dir, 'warm'), { recursive: true, force: true })
    return { tarball, remove }
  } catch (err) {
    remove()
    throw err
  }
}

export interface Container {
  /** the container dir (D of the scripts) */
  dir: string
  /** the container's root as the machine sees it (its upper layer is private to it) */
  root: string
  exec: (argv: string[], opts?: ExecOptions) => Promise<Result>
  /** a shell script inside, as `user` or root */
  sh: (script: string, opts?: ExecOptions) => Promise<Result>
  down: () => Promise<void>
}

/** Boot, with `files` copied into the container's /root, and wait until systemd says it is up. */
export async function bootContainer (files: string[] = []): Promise<Container> {
  const dir = (await must(join(SCRIPTS, 'up.sh'), files, { timeoutMs: 60_000 })).trim()
  const env = { ...process.env, D: dir }
  let downed: Promise<void> | null = null
  const c: Container = {
    dir,
    root: join(dir, 'root'),
    exec: (argv, opts = {}) => run(join(SCRIPTS, 'in.sh'), [...(opts.user !== undefined ? ['-u', opts.user] : []), ...argv], { ...opts, env }),
    sh: (script, opts = {}) => c.exec(['/bin/sh', '-c', script], opts),
    down: () => {
      downed ??= must(join(SCRIPTS, 'down.sh'), [dir], { timeoutMs: 120_000 }).then(() => {})
      return downed
    }
  }
  try {
    // nspawn needs a moment before its PID 1 exists to enter; then systemd's own verdict on the boot.
    for (let i = 0; ; i++) {
      const r = await c.exec(['systemctl', 'is-system-running', '--wait'], { timeoutMs: 90_000 })
      if (r.stdout.trim() === 'running') break
      if (r.stdout.trim() === 'degraded') {
        const failed = await c.exec(['systemctl', '--failed', '--no-legend', '--plain'])
        throw new Error(`the container booted degraded: ${failed.stdout}`)
      }
      if (i >= 50) throw new Error(`the container did not boot: ${r.stdout} ${r.stderr}`)
      await new Promise(resolve => setTimeout(resolve, 200))
    }
    return c
  } catch (err) {
    await c.down()
    throw err
  }
}
