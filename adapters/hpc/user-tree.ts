// The hpc target's file work inside a user's own tree (a runs root with a `{home}` or `{user}` placeholder, SPEC 11):
// run as that user, so that root-squashed NFS works and root never touches a directory a user owns. In system mode the
// daemon runs this file as a child with the user's uid and gid (runChild), the request as one JSON line on stdin (a
// store's values go there, never into argv or the environment) and the answer as one JSON line on stdout. In user mode
// the same functions run in-process: the tree is the daemon user's own.
//
// Everything here runs with the user's own rights only, so it can harm nobody but that user; what it guards against is
// another user: every directory from `/` down to the per-user root must belong to root or this user and be writable by
// nobody else (a sticky dir such as /scratch is fine above it), so bob cannot have pre-made /scratch/alice to read
// alice's stores.
import { constants } from 'node:fs'
import { chmod, link, lstat, mkdir, open, readdir, readlink, rm, unlink } from 'node:fs/promises'
import { basename, dirname, isAbsolute, join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { MARKER_NAME, parseRerunMark, parseRunMarker } from './marker.js'
import { walkComponents } from './path-walk.js'
import { rerunMarkLine } from '../../daemon/nextflow/secrets-env-file.js'

const RUN_ID_RE = /^[0-9A-Za-z]{14}$/
const STAGED_NAME = '.store.json.staged'
const S_ISVTX = 0o1000

export type TreeRequest =
  | { op: 'provision', root: string, runId: string, node: string, host: string, store: string }
  | { op: 'place', root: string, runId: string }
  | { op: 'remove', root: string, runId: string }
  | { op: 'list', root: string }
  // A rerun's secrets file (secrets-file.ts): in a run dir of `root` made again for it, or elsewhere in the user's tree.
  | { op: 'secrets-file', root: string | null, path: string, runId: string, node: string, host: string, content: string }
  | { op: 'secrets-file-remove', root: string | null, path: string, runId: string }

export type TreeAnswer =
  | { ok: true, runDir?: string, storePath?: string, removed?: boolean, runs?: Array<{ runId: string, node: string | null }> }
  | { ok: false, code: 'NFS_ERR_UNSAFE_PATH', path: string, why: string }
  | { ok: false, code: 'errno', errno: string, syscall?: string }

class Unsafe extends Error {
  constructor (readonly path: string, readonly why: string) { super(`${path}: ${why}`) }
}

const myUid = (): number => process.geteuid?.() ?? 0

/**
 * Walk `root` from `/`, making missing directories 0700 (mode set explicitly) when `create`; null when missing and not
 * `create`. A symlink is followed only when root owns it (sites often have /home -> /gpfs/home); any other symlink,
 * and any directory owned by someone but root and this user or writable by others, is refused. Returns the
 * symlink-free path.
 */
async function trustedRoot (root: string, create: boolean): Promise<string | null> {
  if (!isAbsolute(root)) throw new Unsafe(root, 'not an absolute path')
  // The walk is path-walk.ts's, shared with the daemon's trusted-dirs.ts; the checks of each component stay here,
  // apart from that file's: this child trusts root or its user (a symlink only root's) and answers with Unsafe, where
  // the daemon trusts root or itself and throws coded errors this child may not load.
  return await walkComponents(root, {
    readlink,
    tooManySymlinks: () => new Unsafe(root, 'too many symlinks'),
    visit: async (next, last) => {
      let st = await lstat(next).catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return null; throw err })
      if (st === null) {
        if (!create) return 'missing'
        await mkdir(next, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'EEXIST') throw err })
        st = await lstat(next)
        if (st.isDirectory() && st.uid === myUid()) await chmod(next, 0o700)
      }
      if (st.isSymbolicLink()) {
        if (st.uid !== 0) throw new Unsafe(next, `a symlink owned by uid ${st.uid}`)
        return 'symlink'
      }
      if (!st.isDirectory()) throw new Unsafe(next, 'not a directory')
      if (st.uid !== 0 && st.uid !== myUid()) throw new Unsafe(next, `owned by uid ${st.uid}, neither root nor the run's user`)
      if ((st.mode & 0o022) !== 0 && (last || (st.mode & S_ISVTX) === 0)) throw new Unsafe(next, 'writable by group or others')
      return 'dir'
    }
  })
}

/** Remove a path whatever it holds, as this user: subdirs a user made read-only get u+rwx back first. */
async function removeTree (path: string): Promise<boolean> {
  const st = await lstat(path).catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return null; throw err })
  if (st === null) return false
  if (st.isDirectory()) await openUp(path)
  // rm never follows a symlink: it removes the link.
  await rm(path, { recursive: true, force: true, maxRetries: 2 })
  return true
}

async function openUp (dir: string): Promise<void> {
  const st = await lstat(dir)
  if (!st.isDirectory()) return
  if ((st.mode & 0o700) !== 0o700) await chmod(dir, (st.mode & 0o7777) | 0o700)
  for (const e of await readdir(dir, { withFileTypes: true })) if (e.isDirectory()) await openUp(join(dir, e.name))
}

async function writeNew (path: string, content: string, mode: number): Promise<void> {
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode)
  try {
    await fh.chmod(mode)
    await fh.writeFile(content)
  } finally {
    await fh.close()
  }
}

async function readMarker (runDir: string): Promise<string | null> {
  try {
    const fh = await open(join(runDir, MARKER_NAME), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
    try {
      const st = await fh.stat()
      return st.isFile() && st.size <= 4096 ? parseRunMarker(await fh.readFile('utf8')) : null
    } finally {
      await fh.close()
    }
  } catch {
    return null
  }
}

async function readSmall (path: string, parse: (text: string) => string | null): Promise<string | null> {
  try {
    // O_NONBLOCK: a fifo planted under the name must not hang the child.
    const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
    try {
      const st = await fh.stat()
      if (!st.isFile()) return null
      const buf = Buffer.alloc(Math.min(st.size, 4096))
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0)
      return parse(buf.subarray(0, bytesRead).toString('utf8'))
    } finally {
      await fh.close()
    }
  } catch {
    return null
  }
}

/**
 * Where a rerun's secrets file goes: `{ runDir }` when its directory is a run dir (by name) right under the trusted
 * per-user root `root` (the task ran under nf-secrets, whose run dir went with its run), else `{ runDir: null }`.
 */
async function rerunPlace (root: string | null, path: string): Promise<{ runDir: string | null }> {
  const dir = dirname(path)
  if (root === null || !RUN_ID_RE.test(basename(dir))) return { runDir: null }
  const trusted = await trustedRoot(root, false)
  return { runDir: trusted !== null && dirname(dir) === trusted ? dir : null }
}

/** A rerun's file: O_CREAT|O_EXCL|O_NOFOLLOW, so a symlink or anything else already at `path` is refused, never followed. */
async function writeSecretsFile (path: string, content: string): Promise<void> {
  try {
    await writeNew(path, content, 0o600)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EEXIST') throw new Unsafe(path, 'something is already there (a file this rerun did not make, or a symlink)')
    if (code === 'ELOOP') throw new Unsafe(path, 'a symlink')
    throw err
  }
}

function runDirOf (root: string, runId: string): string {
  if (!RUN_ID_RE.test(runId)) throw new Unsafe(runId, 'not a run id')
  return join(root, runId)
}

export async function handleTreeRequest (req: TreeRequest): Promise<TreeAnswer> {
  try {
    switch (req.op) {
      case 'provision': {
        const root = (await trustedRoot(req.root, true))!
        const runDir = runDirOf(root, req.runId)
        await removeTree(runDir) // a retried provision starts again from nothing
        await mkdir(runDir, { mode: 0o700 })
        await chmod(runDir, 0o700)
        await writeNew(join(runDir, MARKER_NAME), `${JSON.stringify({ node: req.node, host: req.host })}\n`, 0o644)
        await writeNew(join(runDir, STAGED_NAME), req.store, 0o600)
        return { ok: true, runDir }
      }
      case 'place': {
        const root = await trustedRoot(req.root, false)
        if (root === null) throw new Unsafe(req.root, 'the per-user runs root went away')
        const runDir = runDirOf(root, req.runId)
        const storePath = join(runDir, 'store.json')
        await link(join(runDir, STAGED_NAME), storePath) // EEXIST rather than replacing what is there
        await unlink(join(runDir, STAGED_NAME))
        return { ok: true, storePath }
      }
      case 'remove': {
        const root = await trustedRoot(req.root, false)
        if (root === null) return { ok: true, removed: false }
        return { ok: true, removed: await removeTree(runDirOf(root, req.runId)) }
      }
      case 'secrets-file': {
        const { runDir } = await rerunPlace(req.root, req.path)
        if (runDir !== null) {
          // The run dir of the task's own run, made again for the rerun: it must not exist (a live run's, or another's).
          await mkdir(runDir, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
            if (err.code === 'EEXIST') throw new Unsafe(runDir, 'the run directory is still there')
            throw err
          })
          await chmod(runDir, 0o700)
          await writeNew(join(runDir, MARKER_NAME), `${JSON.stringify({ node: req.node, host: req.host, rerun: req.runId })}\n`, 0o644)
        }
        await writeSecretsFile(req.path, req.content)
        return { ok: true, storePath: req.path }
      }
      case 'secrets-file-remove': {
        const { runDir } = await rerunPlace(req.root, req.path)
        // Only what this rerun made: its run dir by the mark inside, its file by its first line.
        if (runDir !== null) {
          if (await readSmall(join(runDir, MARKER_NAME), parseRerunMark) !== req.runId) return { ok: true, removed: false }
          return { ok: true, removed: await removeTree(runDir) }
        }
        if (await readSmall(req.path, t => t.split('\n', 1)[0] ?? null) !== rerunMarkLine(req.runId)) return { ok: true, removed: false }
        await unlink(req.path)
        return { ok: true, removed: true }
      }
      case 'list': {
        const root = await trustedRoot(req.root, false)
        if (root === null) return { ok: true, runs: [] }
        const runs: Array<{ runId: string, node: string | null }> = []
        for (const e of await readdir(root, { withFileTypes: true })) {
          if (RUN_ID_RE.test(e.name) && e.isDirectory()) runs.push({ runId: e.name, node: await readMarker(join(root, e.name)) })
        }
        return { ok: true, runs }
      }
    }
  } catch (err) {
    if (err instanceof Unsafe) return { ok: false, code: 'NFS_ERR_UNSAFE_PATH', path: err.path, why: err.why }
    const e = err as NodeJS.ErrnoException
    return { ok: false, code: 'errno', errno: typeof e.code === 'string' ? e.code : 'EIO', ...(e.syscall !== undefined ? { syscall: e.syscall } : {}) }
  }
}

// As a child: one request on stdin, one answer on stdout.
async function main (): Promise<void> {
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  const req = JSON.parse(Buffer.concat(chunks).toString('utf8')) as TreeRequest
  chunks.forEach(c => c.fill(0))
  process.stdout.write(`${JSON.stringify(await handleTreeRequest(req))}\n`)
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch(() => { process.exitCode = 1 })
}
