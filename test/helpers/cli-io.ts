// The CLI in-process (runCli from daemon/cli/main.ts) with its stdio captured: what it printed, and an empty stdin.
import { PassThrough } from 'node:stream'
import type { runCli } from '../../daemon/cli/main.js'

export interface CapturedIo { io: Parameters<typeof runCli>[1], out: () => string, err: () => string }

export function captureIo (env: NodeJS.ProcessEnv = {}): CapturedIo {
  const stdout = new PassThrough()
  const stderr = new PassThrough()
  const o: Buffer[] = []
  const e: Buffer[] = []
  stdout.on('data', (c: Buffer) => o.push(c))
  stderr.on('data', (c: Buffer) => e.push(c))
  return {
    io: { stdin: new PassThrough() as unknown as NodeJS.ReadStream, stdout, stderr, env, cwd: '/' },
    out: () => Buffer.concat(o).toString(),
    err: () => Buffer.concat(e).toString()
  }
}
