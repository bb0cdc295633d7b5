// Shared test setup for the store: private temp dirs, file hashes, a silent logger, tiny tmpfs mounts.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'

export interface Teardown { teardown: (fn: () => void | Promise<void>) => void }

/** A fresh 0700 dir, removed when the test ends. */
export function tempDir (t: Teardown, prefix = 'nfs-store-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A tmpfs of `size` mounted on a fresh dir (we run as root), unmounted when the test ends. */
export function tinyTmpfs (t: Teardown, size = '64k'): string {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-tmpfs-'))
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir])
  // One teardown, in order: a mount point cannot be removed before it is unmounted.
  t.teardown(() => {
    execFileSync('umount', ['-l', dir])
    rmSync(dir, { recursive: true, force: true })
  })
  return dir
}

export function sha256File (path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex')
}

export function silentLogger (): ReturnType<typeof pino> {
  return pino({ level: 'silent' })
}
