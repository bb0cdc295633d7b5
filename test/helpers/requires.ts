// What a test needs that a contributor's machine may lack: root, the test users, a running Slurm, moto's server, etcd.
// A file that needs one says so in a line at its top (`requireRoot(t)`, `const [alice] = requireUsers(t, ['alice'])`,
// `requireSlurm(t)`, `requireMoto(t)`); a single test passes `{ skip: whyNotRoot() }` (or whyNoSlurm, whyNoMoto).
// Where it is missing, the file (or the test) is skipped with a one-line reason, so a non-root `npm test` on a fresh
// machine passes. Under CI (CI set, as .ci/run runs) nothing is skipped: every test runs and a missing need fails it,
// so CI cannot turn green by skipping what it was meant to run.
import { spawnSync } from 'node:child_process'
import { ensureUsers, type TestUser } from './users.js'

interface Planner { plan: (n: number, comment?: string) => void }

const inCi = (): boolean => process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false'

let slurm: string | false | undefined
let etcd: string | false | undefined
let moto: string | false | undefined

/** Why this process cannot run the tests that need root, or false when it can (or under CI). */
export function whyNotRoot (): string | false {
  if (inCi() || process.geteuid?.() === 0) return false
  return 'needs root (it runs things as other users, mounts or chowns); run as root to include it'
}

/** Why the Slurm tests cannot run here, or false when a Slurm answers (or under CI). */
export function whyNoSlurm (): string | false {
  if (inCi()) return false
  if (slurm === undefined) {
    const r = spawnSync('sinfo', ['-h', '-o', '%T'], { encoding: 'utf8', timeout: 15_000 })
    slurm = r.status === 0 ? false : 'needs a running Slurm (sinfo failed): run scripts/ci/start-slurm.sh as root'
  }
  return slurm
}

/** Why the AWS tests cannot run here, or false when moto's server can be started (or under CI). */
export function whyNoMoto (): string | false {
  if (inCi()) return false
  if (moto === undefined) {
    const r = spawnSync('python3', ['-c', 'import moto.server, flask, flask_cors'], { timeout: 30_000 })
    moto = r.status === 0 ? false : "needs moto's server for AWS: pip install 'moto[server]'"
  }
  return moto
}

/** Why the cluster tests cannot run here, or false when etcd is installed (or under CI). */
export function whyNoEtcd (): string | false {
  if (inCi()) return false
  if (etcd === undefined) {
    const r = spawnSync('etcd', ['--version'], { stdio: 'ignore', timeout: 15_000 })
    etcd = r.status === 0 ? false : 'needs etcd for the cluster tests: apt-get install etcd-server etcd-client'
  }
  return etcd
}

/** Skips the whole file with `reason`: its code stops here. */
export function skipFile (t: Planner, reason: string): never {
  t.plan(0, reason)
  process.exit(0)
}

function need (t: Planner, why: string | false): void {
  if (why !== false) skipFile(t, why)
}

export function requireRoot (t: Planner): void {
  need(t, whyNotRoot())
}

export function requireSlurm (t: Planner): void {
  need(t, whyNoSlurm())
}

export function requireMoto (t: Planner): void {
  need(t, whyNoMoto())
}

export function requireEtcd (t: Planner): void {
  need(t, whyNoEtcd())
}

/** Root, then the named users (made when missing, with the group genomics holding alice): see users.ts. */
export function requireUsers (t: Planner, names: readonly string[]): TestUser[] {
  requireRoot(t)
  return ensureUsers(names)
}
