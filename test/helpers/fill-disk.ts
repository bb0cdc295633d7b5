// Fill a (tiny tmpfs) filesystem to its last byte, for the disk-full tests: whole pages first, then single bytes.
// Returns the filler's path, so that a test can free the space again by removing it.
import { appendFileSync } from 'node:fs'
import { join } from 'node:path'

export function fillDisk (dir: string): string {
  const filler = join(dir, 'filler')
  try {
    for (;;) appendFileSync(filler, Buffer.alloc(4096, 0x61))
  } catch {}
  try {
    for (;;) appendFileSync(filler, 'a')
  } catch {}
  return filler
}
