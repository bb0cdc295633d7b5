import t from 'tap'
import type { Test } from 'tap'
import { existsSync } from 'node:fs'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import {
  findHolders, parseProcLocks, sessionLockHolder, sessionLockPath, splitDev
} from '../../daemon/runs/liveness/session-lock.js'

const SAMPLE = [
  '1: POSIX  ADVISORY  WRITE 5796 fe:00:2146767 0 EOF',
  '1: -> POSIX  ADVISORY  WRITE 5801 fe:00:2146767 0 EOF',
  '2: FLOCK  ADVISORY  WRITE 3627 00:1a:16637955 0 EOF',
  '3: OFDLCK ADVISORY  READ  -1 103:02:99 0 EOF',
  '4: LEASE  ACTIVE    READ  4411 fe:00:77 0 EOF',
  '5: POSIX  ADVISORY  READ  12 <none> 0 EOF',
  '6: POSIX  ADVISORY  WRITE 7834 00:26:18446744073709551615 128 255',
  'garbage',
  ''
].join('\n')

t.test('parseProcLocks table', async (t) => {
  const got = parseProcLocks(SAMPLE)
  t.same(got.map((l) => [l.id, l.kind, l.blocked, l.access, l.pid, l.major, l.minor, l.inode]), [
    [1, 'POSIX', false, 'WRITE', 5796, 0xfe, 0, 2146767n],
    [1, 'POSIX', true, 'WRITE', 5801, 0xfe, 0, 2146767n],
    [2, 'FLOCK', false, 'WRITE', 3627, 0, 0x1a, 16637955n],
    [3, 'OFDLCK', false, 'READ', null, 0x103, 2, 99n],
    [6, 'POSIX', false, 'WRITE', 7834, 0, 0x26, 18446744073709551615n]
  ], 'leases, <none> inodes and garbage are dropped; 64-bit inodes survive')
})

t.test('splitDev and findHolders', async (t) => {
  const devs: Array<[bigint, number, number]> = [
    [0xfe00n, 0xfe, 0],
    [0x26n, 0, 0x26],
    [0x10302n, 0x103, 2],
    // majors above 0xfff and minors above 0xff are split into high bits (glibc's makedev)
    [0x1000_0120_0134n, 0x1001, 0x1234]
  ]
  for (const [dev, major, minor] of devs) t.same(splitDev(dev), { major, minor }, `dev ${dev}`)
  const locks = parseProcLocks(SAMPLE)
  t.same(findHolders(locks, 0xfe00n, 2146767n).map((l) => l.pid), [5796], 'the waiter is not a holder')
  t.same(findHolders(locks, 0xfe01n, 2146767n), [], 'same inode on another device is not a match')
  t.same(findHolders(locks, 0x10302n, 99n).map((l) => l.kind), ['OFDLCK'])
})

t.test('sessionLockPath refuses a session id that is not a UUID', async (t) => {
  for (const bad of ['../x', '', 'a/b', '0b6e4c1a-3f2d-4e8b-9a7c-1d2e3f4a5b6c/..']) {
    t.throws(() => sessionLockPath('/tmp', bad), { code: 'NFS_ERR_BAD_REQUEST' }, JSON.stringify(bad))
  }
})

// A child that locks a file the way asked and says `locked` on stdout; it holds until killed.
// the system python starts in 50 ms; a pyenv shim takes ten times that
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3'

const LOCKER = `
import fcntl, os, struct, sys
path, how = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
if how == 'posix':
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
elif how == 'flock':
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
elif how == 'ofd':
    fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack('hhqqi', fcntl.F_WRLCK, 0, 0, 0, 0))
print('locked', flush=True)
sys.stdin.read()
`

async function startLocker (t: Test, path: string, how: string): Promise<ChildProcess> {
  const child = spawn(PYTHON, ['-c', LOCKER, path, how], { stdio: ['pipe', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream })
  const [line] = await once(rl, 'line') as [string]
  t.equal(line, 'locked', `${how} lock taken`)
  return child
}

const UUID = '0b6e4c1a-3f2d-4e8b-9a7c-1d2e3f4a5b6c'

async function launchDir (t: Test): Promise<{ dir: string, lock: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'nfs-lock-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await mkdir(join(dir, '.nextflow', 'cache', UUID, 'db'), { recursive: true })
  return { dir, lock: sessionLockPath(dir, UUID) }
}

for (const how of ['posix', 'ofd', 'flock']) {
  t.test(`a real ${how} lock is seen held, then released on SIGKILL`, async (t) => {
    const { dir, lock } = await launchDir(t)
    const child = await startLocker(t, lock, how)
    const before = await stat(lock)
    const got = await sessionLockHolder(dir, UUID)
    t.equal(got.held, true)
    // OFD locks have no owning pid in /proc/locks on most kernels
    if (how !== 'ofd') t.equal(got.pid, child.pid)
    // Probing twice changes nothing: the file was never opened for writing or locked by us.
    t.same(await sessionLockHolder(dir, UUID), got)
    t.equal((await stat(lock)).mtimeMs, before.mtimeMs)
    child.kill('SIGKILL')
    await once(child, 'exit')
    t.same(await sessionLockHolder(dir, UUID), { held: false, pid: null }, 'released by the kernel')
  })
}

t.test('no LOCK file, or no session dir at all', async (t) => {
  const { dir } = await launchDir(t)
  t.same(await sessionLockHolder(dir, UUID), { held: false, pid: null })
  t.same(await sessionLockHolder(join(dir, 'nowhere'), UUID), { held: false, pid: null })
})

t.test('an unlocked LOCK file is not held', async (t) => {
  const { dir, lock } = await launchDir(t)
  await writeFile(lock, '')
  t.same(await sessionLockHolder(dir, UUID), { held: false, pid: null })
})

t.test('symlinks under the launch dir are not followed', async (t) => {
  // the real, locked session lives elsewhere; the probed launch dir only links to it
  const real = await launchDir(t)
  await startLocker(t, real.lock, 'posix')
  t.equal((await sessionLockHolder(real.dir, UUID)).held, true)

  const linkedFile = await mkdtemp(join(tmpdir(), 'nfs-lock-ln-'))
  t.teardown(() => rm(linkedFile, { recursive: true, force: true }))
  await mkdir(join(linkedFile, '.nextflow', 'cache', UUID, 'db'), { recursive: true })
  await symlink(real.lock, join(linkedFile, '.nextflow', 'cache', UUID, 'db', 'LOCK'))
  t.same(await sessionLockHolder(linkedFile, UUID), { held: false, pid: null }, 'LOCK itself a symlink')

  const linkedDir = await mkdtemp(join(tmpdir(), 'nfs-lock-ln-'))
  t.teardown(() => rm(linkedDir, { recursive: true, force: true }))
  await symlink(join(real.dir, '.nextflow'), join(linkedDir, '.nextflow'))
  t.same(await sessionLockHolder(linkedDir, UUID), { held: false, pid: null }, '.nextflow a symlink')
})
