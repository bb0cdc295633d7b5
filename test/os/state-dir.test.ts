// The state-dir lock in-process: OFD locks conflict between two opens even in one process, so both sides of the
// refusal run here; the two-daemon case is test/e2e/state-lock.test.ts.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describeHolder, lockStateDir } from '../../daemon/os/state-dir.js'

function scratch (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-state-lock-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('describeHolder', async t => {
  const cases: Array<[string, string]> = [
    ['{"pid":42,"host":"login1","since":"2026-12-02T00:00:00.000Z"}\n', 'pid 42 on login1'],
    ['', 'pid unknown'],
    ['{"pid":"42","host":"x"}', 'pid unknown'],
    ['not json', 'pid unknown']
  ]
  for (const [text, want] of cases) t.equal(describeHolder(text), want, JSON.stringify(text))
})

t.test('a second lock on the same state dir is refused with NFS_ERR_STATE_IN_USE; released, it can be taken again', async t => {
  const dir = join(scratch(t), 'state')
  const first = await lockStateDir(dir, 'node-a')
  t.equal(statSync(dir).mode & 0o777, 0o700, 'a missing state dir is made 0700, whatever the umask')
  t.equal(statSync(join(dir, 'lock')).mode & 0o777, 0o600)
  t.same(JSON.parse(readFileSync(join(dir, 'lock'), 'utf8')).pid, process.pid)
  await t.rejects(lockStateDir(dir, 'node-b'), { code: 'NFS_ERR_STATE_IN_USE', message: new RegExp(`pid ${process.pid} on node-a`) })
  t.same(JSON.parse(readFileSync(join(dir, 'lock'), 'utf8')).host, 'node-a', 'the refused one wrote nothing')
  first.release()
  const again = await lockStateDir(dir, 'node-b')
  again.release()
})

t.test('a symlink planted at <state>/lock is not followed', async t => {
  const top = scratch(t)
  const dir = join(top, 'state')
  const victim = join(top, 'victim')
  writeFileSync(victim, 'untouched')
  await lockStateDir(dir, 'h').then(l => l.release())
  rmSync(join(dir, 'lock'))
  symlinkSync(victim, join(dir, 'lock'))
  await t.rejects(lockStateDir(dir, 'h'), { code: 'ELOOP' })
  t.equal(readFileSync(victim, 'utf8'), 'untouched')
})
