// Stand-in for daemon/children/run-child.ts (the children slice lands it) with the same signature, so the Slurm
// code switches to it by changing one import. A child with a deadline, in a process group of its own that is
// killed as a whole at the deadline (a shim's `sleep` dies with it), with its error event handled first.
import { spawn } from 'node:child_process'

export interface RunChildOptions {
  uid?: number
  gid?: number
  cwd?: string
  env?: NodeJS.ProcessEnv
  deadlineMs: number
  input?: string
}

export interface ChildResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  timedOut: boolean
}

const MAX_OUTPUT = 4 * 1024 * 1024

export function runChild (file: string, args: string[], opts: RunChildOptions): Promise<ChildResult> {
  return new Promise((resolve) => {
    let timedOut = false
    const out: Buffer[] = []
    const err: Buffer[] = []
    let size = 0
    const child = spawn(file, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      detached: true,
      ...(opts.uid !== undefined ? { uid: opts.uid } : {}),
      ...(opts.gid !== undefined ? { gid: opts.gid } : {})
    })
    const killGroup = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL')
      } catch {}
    }
    const timer = setTimeout(() => { timedOut = true; killGroup() }, opts.deadlineMs)
    const keep = (into: Buffer[]) => (b: Buffer): void => {
      size += b.length
      if (size <= MAX_OUTPUT) into.push(b)
      else killGroup()
    }
    child.stdout!.on('data', keep(out))
    child.stderr!.on('data', keep(err))
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => {})
      child.stdin!.end(opts.input)
    }
    child.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      resolve({ code: null, signal: null, stdout: '', stderr: e.code ?? 'spawn failed', timedOut })
    })
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), timedOut })
    })
  })
}
