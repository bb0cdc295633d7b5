// A runs root in each user's own tree: `hpc.runsRoot` with `{home}` (the user's home from passwd) or `{user}` (the
// user name), e.g. `{home}/.nf-secretsd/runs` or `/scratch/{user}/.nf-secretsd`. Run dirs are `<that root>/<runId>`.
// All file work there is done as the user: by a child process with the user's uid and gid when the daemon is root
// (SPEC 11: so root-squashed NFS works and root never touches a directory a user owns), in-process in user mode.
import { join } from 'node:path'
import type { Logger } from 'pino'
import { nfsError } from '../../daemon/errors.js'
import { unsafeRunsRootCharacter } from '../../daemon/config.js'
import { native } from '../../daemon/os/native.js'
import { packageRoot } from '../../daemon/os/package-root.js'
import { runChild } from '../../daemon/children/run-child.js'
import type { RunLiveness, TargetRun } from '../types.js'
import { handleTreeRequest, type TreeAnswer, type TreeRequest } from './user-tree.js'

const PLACEHOLDER_RE = /\{(home|user)\}/
/** A stuck child (a hung NFS server) is killed at this deadline; the revoke is retried later, the provision fails. */
const CHILD_DEADLINE_MS = 30_000

export function isPerUserRoot (template: string): boolean {
  return PLACEHOLDER_RE.test(template)
}

/** Pure: the template with `{user}` and `{home}` filled in. */
export function expandRunsRoot (template: string, user: string, home: string): string {
  return template.replace(/\{user\}/g, user).replace(/\{home\}/g, home.replace(/\/+$/, ''))
}

export interface TreeUser { user: string, uid: number, gid: number }

export interface PerUserRootOptions {
  template: string
  privileged: boolean
  nodeId: string
  host: string
  log: Logger
}

/**
 * One request to user-tree.ts as `u`: a child with u's uid and gid when `privileged` (the request on its stdin, values
 * included, never argv), in-process otherwise. A refusal comes back as NFS_ERR_UNSAFE_PATH, a failed call as its errno.
 */
export async function askTree (privileged: boolean, u: TreeUser, req: TreeRequest): Promise<TreeAnswer & { ok: true }> {
  let answer: TreeAnswer
  if (!privileged) {
    answer = await handleTreeRequest(req)
  } else {
    const script = join(packageRoot(), 'dist', 'adapters', 'hpc', 'user-tree.js')
    const r = await runChild(process.execPath, [script], { uid: u.uid, gid: u.gid, input: JSON.stringify(req), deadlineMs: CHILD_DEADLINE_MS })
    if (r.timedOut) throw Object.assign(new Error('child timed out'), { code: 'ETIMEDOUT', syscall: `user-tree ${req.op}` })
    try {
      answer = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as TreeAnswer
    } catch {
      throw Object.assign(new Error('child failed'), { code: 'ECHILD', syscall: `user-tree ${req.op} exited ${String(r.code ?? r.signal)}` })
    }
  }
  if (answer.ok) return answer
  if (answer.code === 'NFS_ERR_UNSAFE_PATH') throw nfsError('NFS_ERR_UNSAFE_PATH', [answer.path, answer.why])
  throw Object.assign(new Error(answer.errno), { code: answer.errno, ...(answer.syscall !== undefined ? { syscall: answer.syscall } : {}) })
}

export function createPerUserRoots (opts: PerUserRootOptions) {
  function rootOf (u: TreeUser): string {
    let home = ''
    if (opts.template.includes('{home}')) {
      const pw = native().getpwuid(u.uid)
      if (pw === null || pw.home === '' || !pw.home.startsWith('/')) throw nfsError('NFS_ERR_UNSAFE_PATH', [u.user, 'no home directory in passwd'])
      home = pw.home
    }
    const root = expandRunsRoot(opts.template, u.user, home)
    const bad = unsafeRunsRootCharacter(root)
    if (bad !== null) throw nfsError('NFS_ERR_UNSAFE_PATH', [root, `holds ${bad}, which Nextflow's task wrapper would split`])
    return root
  }

  const ask = async (u: TreeUser, req: TreeRequest): Promise<TreeAnswer & { ok: true }> => await askTree(opts.privileged, u, req)

  return {
    /** Makes the run dir and the staged store; `store.json` appears once `ready` settles. Returns the store's path. */
    async provision (run: TargetRun, store: string, ready: Promise<void> | undefined, onCreated: () => void): Promise<string> {
      const root = rootOf(run)
      await ask(run, { op: 'provision', root, runId: run.runId, node: opts.nodeId, host: opts.host, store })
      onCreated()
      await ready
      return (await ask(run, { op: 'place', root, runId: run.runId })).storePath!
    },

    /** The user's runs root (its template filled in), as the child resolves it. */
    rootOf,

    async remove (run: TreeUser & { runId: string }): Promise<boolean> {
      return (await ask(run, { op: 'remove', root: rootOf(run), runId: run.runId })).removed === true
    },

    /** The sweep over the per-user roots of `users` (the ledger's users: a root is only found through its user). */
    async sweep (users: Iterable<string>, liveness: (runId: string) => RunLiveness): Promise<number> {
      let removed = 0
      for (const user of users) {
        const pw = native().getpwnam(user)
        if (pw === null) continue
        const u = { user, uid: pw.uid, gid: pw.gid }
        try {
          const root = rootOf(u)
          for (const r of (await ask(u, { op: 'list', root })).runs ?? []) {
            const state = liveness(r.runId)
            if (state === 'live' || (state === 'unknown' && r.node !== opts.nodeId)) continue
            if ((await ask(u, { op: 'remove', root, runId: r.runId })).removed === true) removed++
          }
        } catch (err) {
          opts.log.warn({ user, err }, 'hpc sweep skipped a per-user runs root')
        }
      }
      return removed
    }
  }
}
