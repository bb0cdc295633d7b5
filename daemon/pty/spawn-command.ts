// A launched run's command started under a pseudo-terminal (PtyHost.launch): its launch files written, then the
// wrapper (or a transient unit) spawned with nothing of the daemon's but its stdio, its master fd close-on-exec.
import type { FileHandle } from 'node:fs/promises'
import { spawn as ptySpawn, type IPty, type IPtyForkOptions } from './node-pty.js'
import type { Logger } from '../logger.js'
import { native } from '../os/native.js'
import type { CreateRunRequest, CreatedRun } from '../runs/service.js'
import type { Caller } from '../types.js'
import type { LaunchFiles, LaunchPaths } from './launch-files.js'
import { transientArgs } from './transient-unit.js'
import { CLEAN_PATH, envFileText, terminalName, wrapperArgs } from './wrapper.js'

export type SpawnFn = (file: string, args: string[], options: IPtyForkOptions) => IPty

/** node-pty's own spawn */
export const defaultSpawn: SpawnFn = ptySpawn

export interface SpawnOptions {
  shell: string
  /** setpriv, when the command must drop to the caller (the daemon is root, the caller is not) */
  setpriv: string | null
  /** systemd-run, when commands run in transient units of their own (transient-unit.ts) */
  systemdRun: string | null
  spawn: SpawnFn
  files: LaunchFiles
  log: Logger
}

export interface Spawned {
  term: IPty
  paths: LaunchPaths
  log: FileHandle | null
}

/**
 * node-pty opens the master without FD_CLOEXEC (glibc forkpty), so every later child of the daemon would inherit
 * it: another user's launched command could read this session and type into it, as this user. Mark it at once;
 * JS runs nothing else between the spawn and here, so no spawn can come in between. A terminal whose fd cannot be
 * marked is not used.
 */
function closeOnExec (term: IPty): void {
  const fd = (term as IPty & { fd?: unknown }).fd
  if (typeof fd !== 'number') throw new Error('the terminal has no master fd to mark close-on-exec')
  native().cloexec(fd)
}

/** On a failure nothing is left: the env file removed, the output log closed, a spawned terminal killed. */
export async function spawnCommand (o: SpawnOptions, caller: Caller, req: CreateRunRequest, created: CreatedRun): Promise<Spawned> {
  const owner = { user: caller.user, uid: caller.uid, gid: caller.gid }
  const paths = await o.files.prepare(owner, created.runId)
  const env = { ...(req.env ?? {}), ...created.env }
  const { text, dropped } = envFileText(env)
  if (dropped.length > 0) o.log.info({ runId: created.runId, dropped: dropped.length }, 'environment variables a shell cannot carry were left out')
  let log: FileHandle | null = null
  let term: IPty
  try {
    await o.files.writeEnv(paths, text)
    log = await o.files.createLog(owner, paths)
    const spec = { shell: o.shell, identity: caller, envFile: paths.env, statusFile: paths.status, launchDir: req.launchDir, command: req.command! }
    const args = o.systemdRun !== null
      ? transientArgs({ ...spec, systemdRun: o.systemdRun, runId: created.runId })
      : wrapperArgs({ ...spec, setpriv: o.setpriv })
    // Whatever fd of the daemon lacks FD_CLOEXEC (a master from before, an inherited fd), the wrapper must not get it.
    native().cloexecFrom(3)
    term = o.spawn(o.shell, args, {
      name: terminalName(env.TERM),
      cols: req.cols ?? 80,
      rows: req.rows ?? 24,
      cwd: '/',
      // The wrapper's own environment is fixed: the caller's reaches the command through the env file.
      env: { PATH: CLEAN_PATH },
      encoding: null
    })
    try {
      closeOnExec(term)
    } catch (err) {
      term.kill('SIGKILL')
      throw err
    }
  } catch (err) {
    await o.files.remove(paths.env)
    await log?.close().catch(() => {})
    throw err
  }
  return { term, paths, log }
}
