// Real local users for permission tests (tests run as root). Creates what is missing with useradd -m and
// makes sure the Unix group `genomics` exists with alice in it, for the workspace group-mapping tests.
// Test files run in parallel and useradd takes a lock on /etc/passwd, so every step is retried and
// "already exists" counts as success.
import { execFileSync } from 'node:child_process'
import { userInfo } from 'node:os'

export interface TestUser {
  name: string
  uid: number
  gid: number
}

export const TEST_GROUP = 'genomics'
const GROUP_MEMBER = 'alice'

function sleepMs (ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

function getent (db: 'passwd' | 'group', key: string): string[] | null {
  try {
    return execFileSync('getent', [db, key], { encoding: 'utf8' }).trim().split(':')
  } catch {
    return null
  }
}

// Run a shadow-utils command, retrying while another test holds the lock; `done` says when it is in effect.
function shadow (argv: string[], done: () => boolean): void {
  let last: unknown
  for (let i = 0; i < 50; i++) {
    if (done()) return
    try {
      execFileSync(argv[0]!, argv.slice(1), { stdio: 'pipe' })
      return
    } catch (err) {
      last = err
      sleepMs(100)
    }
  }
  if (done()) return
  throw new Error(`${argv.join(' ')} failed: ${String((last as { stderr?: unknown })?.stderr ?? last)}`)
}

function lookup (name: string): TestUser | null {
  const pw = getent('passwd', name)
  if (pw === null) return null
  return { name, uid: Number(pw[2]), gid: Number(pw[3]) }
}

function inGroup (user: string, group: string): boolean {
  const gr = getent('group', group)
  return gr !== null && (gr[3] ?? '').split(',').includes(user)
}

/** Ensure each user exists (with a home), plus the group `genomics` with alice as a member. */
export function ensureUsers (names: readonly string[]): TestUser[] {
  if (process.geteuid?.() !== 0) throw new Error('ensureUsers needs root: the permission tests run as root')
  const wanted = names.includes(GROUP_MEMBER) ? names : [...names, GROUP_MEMBER]
  for (const name of wanted) shadow(['useradd', '-m', '-s', '/bin/bash', name], () => lookup(name) !== null)
  shadow(['groupadd', TEST_GROUP], () => getent('group', TEST_GROUP) !== null)
  shadow(['usermod', '-a', '-G', TEST_GROUP, GROUP_MEMBER], () => inGroup(GROUP_MEMBER, TEST_GROUP))
  return names.map(name => {
    const u = lookup(name)
    if (u === null) throw new Error(`user ${name} is missing after useradd`)
    return u
  })
}

/** The user the tests run as (root in CI, anyone on a contributor's machine): never assume "root" in a path. */
export const ME = userInfo().username
