// A rerun's secrets file (SPEC 11 `nf-secrets rerun TASK_DIR`): Nextflow's `.nf-<hash>.secrets` export file at exactly
// the path a task's `.command.run` sources, holding exactly the names it greps, for as long as the rerun lives. The path
// comes from the user's own wrapper, so it is treated as theirs to name and never as something root may write through:
//  - in a run dir of the shared runs root (the task ran under nf-secrets: its store was <runsRoot>/<user>/<R>/store.json
//    and the run dir R went with its run): R is made again exactly as a run dir is made (by the daemon in the user dir
//    only it can write, marked, handed over), marked as this rerun's; its removal checks that mark;
//  - anywhere else, a per-user runs root included: written by user-tree.ts as the user (a child with their uid and gid
//    in system mode), O_CREAT|O_EXCL|O_NOFOLLOW, 0600, so a symlink or a file already there is refused and nothing is
//    written through it; its removal checks the file's first line (the rerun's mark) and runs as the user too.
import { constants } from 'node:fs'
import { open, rename } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { formatSecretsEnvFile } from '../../daemon/nextflow/secrets-env-file.js'
import type { SecretValue } from '../../daemon/secret-value.js'
import type { Placement, TargetRun } from '../types.js'
import { askTree } from './per-user-root.js'
import { readRunMarker, removeRunDir, writeRunMarker, MARKER_NAME } from './safe-fs.js'
import { writeStoreAndHandOver } from './store-staging.js'
import { lstatOrNull, makeRunDir, unsafePath } from './trusted-dirs.js'
import { parseRerunMark } from './marker.js'

const RUN_ID_RE = /^[0-9A-Za-z]{14}$/

export interface SecretsFileOptions {
  privileged: boolean
  nodeId: string
  host: string
  cleanupDeadlineMs: number
  /** the shared runs root's dir of `user`, symlink-free, or null (none, or a per-user root) */
  sharedUserDir: (user: string) => Promise<string | null>
  /** the per-user runs root of a user (its template filled in), or null with a shared root */
  perUserRoot: ((run: TargetRun) => string) | null
}

/** The rerun's mark in the run dir it made again, read without following a symlink or blocking on a fifo. */
async function readRerunMark (runDir: string): Promise<string | null> {
  try {
    const fh = await open(join(runDir, MARKER_NAME), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK)
    try {
      const st = await fh.stat()
      return st.isFile() && st.size <= 4096 ? parseRerunMark(await fh.readFile('utf8')) : null
    } finally {
      await fh.close()
    }
  } catch {
    return null
  }
}

export function createSecretsFiles (opts: SecretsFileOptions) {
  const owner = (run: TargetRun): { uid: number, gid: number } | null => opts.privileged ? { uid: run.uid, gid: run.gid } : null

  /** The run dir of the shared runs root the file goes in, or null when it goes elsewhere (user-tree.ts). */
  async function sharedRunDir (run: TargetRun, path: string): Promise<{ userDir: string, runDir: string } | null> {
    if (opts.perUserRoot !== null) return null
    const runDir = dirname(path)
    if (!RUN_ID_RE.test(basename(runDir))) return null
    const userDir = await opts.sharedUserDir(run.user)
    return userDir !== null && dirname(runDir) === userDir ? { userDir, runDir } : null
  }

  async function provision (run: TargetRun, path: string, secrets: ReadonlyMap<string, SecretValue>, ready?: Promise<void>): Promise<Placement> {
    // Nothing is made before the write-ahead intent is on disk: its revoke then finds whatever this leaves.
    await ready
    const content = formatSecretsEnvFile(run.runId, [...secrets].map(([name, v]) => ({ name, value: v.reveal() })))
    const shared = await sharedRunDir(run, path)
    if (shared === null) {
      await askTree(opts.privileged, run, { op: 'secrets-file', root: opts.perUserRoot?.(run) ?? null, path, runId: run.runId, node: opts.nodeId, host: opts.host, content })
    } else {
      const { userDir, runDir } = shared
      // The run it belonged to still holds it (or another node's run of that id): never replaced, never removed.
      if (await lstatOrNull(runDir) !== null) throw unsafePath(runDir, 'the run directory is still there')
      const making = join(userDir, `.${basename(runDir)}.${opts.nodeId}.new`)
      await removeRunDir(making, opts.privileged, opts.cleanupDeadlineMs).catch(() => {})
      let created = false
      try {
        await makeRunDir(making)
        await writeRunMarker(making, opts.nodeId, opts.host, owner(run), run.runId)
        // Only the daemon writes the user dir, so nothing appeared at runDir since the check above.
        await rename(making, runDir)
        created = true
        await writeStoreAndHandOver(runDir, Buffer.from(content, 'utf8'), owner(run), undefined, basename(path))
      } catch (err) {
        await removeRunDir(created ? runDir : making, opts.privileged, opts.cleanupDeadlineMs).catch(() => {})
        throw err
      }
    }
    return { env: { NF_SECRETS_RUN_ID: run.runId }, refs: [...secrets.keys()].sort().map(name => ({ name, ref: path })) }
  }

  /** Remove what this rerun made, and only that; false when there was nothing of it. */
  async function revoke (run: TargetRun, path: string): Promise<boolean> {
    const shared = await sharedRunDir(run, path)
    if (shared === null) {
      return (await askTree(opts.privileged, run, { op: 'secrets-file-remove', root: opts.perUserRoot?.(run) ?? null, path, runId: run.runId })).removed === true
    }
    const { userDir, runDir } = shared
    const half = await removeRunDir(join(userDir, `.${basename(runDir)}.${opts.nodeId}.new`), opts.privileged, opts.cleanupDeadlineMs)
    if (await readRerunMark(runDir) !== run.runId) return half
    // Ours by its mark, and this node's (readRunMarker): remove it as any run dir is removed.
    if (await readRunMarker(runDir) !== opts.nodeId) return half
    return await removeRunDir(runDir, opts.privileged, opts.cleanupDeadlineMs) || half
  }

  return { provision, revoke }
}
