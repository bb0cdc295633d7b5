// A user swapping two names in a dir of theirs, atomically and in a tight loop (renameat2 RENAME_EXCHANGE, through
// python's ctypes: node has no renameat2), as the real user through runuser: the attacker's side of the races between
// a check by name and a use (test/watch/walk-owner.test.ts, root-exchange.test.ts).
import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { arch } from 'node:os'
import type { Teardown } from './runs.js'

const RENAMEAT2: Record<string, number> = { x64: 316, arm64: 276 }
const nr = RENAMEAT2[arch()]

/** tap's skip for a test that swaps: a reason where renameat2's syscall number is not known, else false. */
export const renameExchangeSkip: string | false = nr === undefined ? `renameat2's syscall number is not known here (${arch()})` : false

/** The loop: exchange the two names in the dir until the stop file appears (or its parent is gone). */
const SWAPPER = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
nr, d, a, b, stop = int(sys.argv[1]), sys.argv[2], os.fsencode(sys.argv[3]), os.fsencode(sys.argv[4]), sys.argv[5]
os.chdir(d)
n = 0
while True:
    libc.syscall(nr, -100, a, -100, b, 2)
    n += 1
    if n % 256 == 0 and (os.path.exists(stop) or os.getppid() == 1):
        break
`

export interface Swapper {
  /** Write the stop file and wait for the loop to end: its exit code. */
  stop: () => Promise<number | null>
  /** What it wrote on stderr so far. */
  stderr: () => string
}

/** `user` exchanges `a` and `b` in `dir` until stop() or the test's teardown (which writes `stopFile`). */
export function startSwapper (t: Teardown, user: string, dir: string, [a, b]: [string, string], stopFile: string): Swapper {
  if (nr === undefined) throw new Error(renameExchangeSkip as string)
  const child = spawn('runuser', ['-u', user, '--', 'python3', '-c', SWAPPER, String(nr), dir, a, b, stopFile], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (b: Buffer) => { stderr += b.toString() })
  child.on('error', () => {})
  const ended = new Promise<number | null>(resolve => { child.once('exit', code => { resolve(code) }) })
  const stop = async (): Promise<number | null> => {
    writeFileSync(stopFile, '')
    return await ended
  }
  t.teardown(async () => { await stop() })
  return { stop, stderr: () => stderr }
}
