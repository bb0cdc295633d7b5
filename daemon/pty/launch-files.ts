// The files of launched runs, under <stateDir>/launch/<user>/: <runId>.log (the output, owned by the run's user,
// 0600), <runId>.env (the caller's environment, read once by the wrapper and removed by it) and <runId>.exit (the
// status the wrapper records). The state dir is 0700 and owned by the daemon's user, so in system mode no parent
// is writable by a user; files are still created with O_EXCL|O_NOFOLLOW and dirs checked with lstat.
import { constants } from 'node:fs'
import { lstat, mkdir, open, readdir, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { nfsError } from '../errors.js'

const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW

export interface RunFilesOwner {
  user: string
  uid: number
  gid: number
}

export interface LaunchPaths {
  dir: string
  log: string
  env: string
  status: string
}

/** A user's directory name: the name when it is a plain one, else the uid (never `..`, never a slash). */
export function userDirName (owner: Pick<RunFilesOwner, 'user' | 'uid'>): string {
  return /^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/.test(owner.user) ? owner.user : `uid-${owner.uid}`
}

export class LaunchFiles {
  readonly root: string
  readonly #daemonUid: number

  constructor (stateDir: string, daemonUid: number) {
    this.root = join(stateDir, 'launch')
    this.#daemonUid = daemonUid
  }

  paths (owner: Pick<RunFilesOwner, 'user' | 'uid'>, runId: string): LaunchPaths {
    if (!/^[0-9A-Za-z]{1,64}$/.test(runId)) throw nfsError('NFS_ERR_INVALID_PATH', ['run id'])
    const dir = join(this.root, userDirName(owner))
    return { dir, log: join(dir, `${runId}.log`), env: join(dir, `${runId}.env`), status: join(dir, `${runId}.exit`) }
  }

  async #privateDir (dir: string): Promise<void> {
    await mkdir(dir, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'EEXIST') throw err })
    const st = await lstat(dir)
    if (!st.isDirectory() || st.uid !== this.#daemonUid || (st.mode & 0o077) !== 0) {
      throw nfsError('NFS_ERR_UNSAFE_PATH', [dir, 'not a private directory of the daemon'])
    }
  }

  /** Make the user's dir and return the run's paths. */
  async prepare (owner: RunFilesOwner, runId: string): Promise<LaunchPaths> {
    const p = this.paths(owner, runId)
    await this.#privateDir(this.root)
    await this.#privateDir(p.dir)
    return p
  }

  /** Create the run's output log, 0600, owned by the run's user. */
  async createLog (owner: RunFilesOwner, p: LaunchPaths): Promise<FileHandle> {
    const fh = await open(p.log, CREATE | constants.O_APPEND, 0o600)
    try {
      if (this.#daemonUid === 0 && owner.uid !== 0) await fh.chown(owner.uid, owner.gid)
      await fh.chmod(0o600)
      return fh
    } catch (err) {
      await fh.close()
      throw err
    }
  }

  /** Write the environment file the wrapper reads (it may hold the caller's own tokens: 0600, the daemon's). */
  async writeEnv (p: LaunchPaths, text: string): Promise<void> {
    const fh = await open(p.env, CREATE, 0o600)
    try {
      await fh.writeFile(text)
    } finally {
      await fh.close()
    }
  }

  /** The status file's text, or null when there is none (yet). */
  async readStatus (p: LaunchPaths): Promise<string | null> {
    try {
      const fh = await open(p.status, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
      try {
        const st = await fh.stat()
        if (!st.isFile() || st.size > 64) return null
        return await fh.readFile('utf8')
      } finally {
        await fh.close()
      }
    } catch {
      return null
    }
  }

  /** Did this daemon launch the run: is its output log in this state dir? */
  async hasLog (owner: Pick<RunFilesOwner, 'user' | 'uid'>, runId: string): Promise<boolean> {
    try {
      return (await lstat(this.paths(owner, runId).log)).isFile()
    } catch {
      return false
    }
  }

  /** The last `bytes` bytes of a run's log (a replay for runs that outlived a daemon restart). */
  async logTail (owner: Pick<RunFilesOwner, 'user' | 'uid'>, runId: string, bytes: number): Promise<Buffer> {
    let fh: FileHandle | null = null
    try {
      fh = await open(this.paths(owner, runId).log, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
      const st = await fh.stat()
      if (!st.isFile()) return Buffer.alloc(0)
      const start = Math.max(0, st.size - bytes)
      const buf = Buffer.alloc(st.size - start)
      const { bytesRead } = await fh.read(buf, 0, buf.length, start)
      return buf.subarray(0, bytesRead)
    } catch {
      return Buffer.alloc(0)
    } finally {
      await fh?.close()
    }
  }

  async remove (path: string): Promise<void> {
    await unlink(path).catch(() => {})
  }

  /**
   * Remove logs older than the retention (by last write) and leftovers of runs that are over: status files and
   * environment files the wrapper never got to. `keep` says which run ids are still live.
   */
  async prune (retentionDays: number, now: Date, keep: (runId: string) => boolean): Promise<number> {
    const horizon = now.getTime() - retentionDays * 86_400_000
    let removed = 0
    let users: string[]
    try {
      users = await readdir(this.root)
    } catch {
      return 0
    }
    for (const u of users) {
      const dir = join(this.root, u)
      const st = await lstat(dir).catch(() => null)
      if (st === null || !st.isDirectory()) continue
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const m = /^([0-9A-Za-z]+)\.(log|env|exit)$/.exec(name)
        if (m === null || keep(m[1]!)) continue
        const path = join(dir, name)
        const fst = await lstat(path).catch(() => null)
        if (fst === null) continue
        if (m[2] !== 'log' || fst.mtimeMs < horizon) {
          await this.remove(path)
          removed++
        }
      }
    }
    return removed
  }
}
