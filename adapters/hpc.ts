// Target `hpc`: a Nextflow secrets store of the run's own, `<runsRoot>/<user>/<runId>/store.json`, which the
// run finds through NXF_SECRETS_FILE. Nextflow writes its `.nf-<hash>.secrets` export file beside the store,
// so revoking removes the whole run dir. The filesystem work that must stay safe as root lives in
// hpc/safe-fs.ts; this file is the Target lifecycle around it.
import type { Logger } from 'pino'
import { chmod, mkdir, readdir, rename, stat } from 'node:fs/promises'
import type { Stats } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { isCoded, nfsError } from '../daemon/errors.js'
import type { CodedError } from '../daemon/errors.js'
import type { SecretValue } from '../daemon/secret-value.js'
import type { Placement, ProvisionOptions, RunLiveness, SweepScope, Target, TargetRun, TargetStatus } from './types.js'
import { formatNextflowStore, isValidSecretName } from '../daemon/nextflow/secrets-file.js'
import { readMountFsType } from '../daemon/os/fs-type.js'
import { closedComponents, probeHardLinks } from './hpc/probes.js'
import { runsRootWarnings } from './hpc/status-warnings.js'
import { createPerUserRoots, isPerUserRoot } from './hpc/per-user-root.js'
import { createSecretsFiles } from './hpc/secrets-file.js'
import { CLEANUP_DEADLINE_MS, readRunMarkerText, removeRunDir, writeRunMarker } from './hpc/safe-fs.js'
import { placeStagedStore, stageStore } from './hpc/store-staging.js'
import { alreadyThere, ensureUserDir, lstatOrNull, makeRunDir, resolveTrustedDir, unsafePath } from './hpc/trusted-dirs.js'
import { sweepable } from './hpc/marker.js'

export { isSharedFsType } from '../daemon/os/fs-type.js'

export interface HpcTargetOptions {
  runsRoot: string
  /** system mode: the daemon is root, creates as root and hands the run dir to the run's user */
  privileged: boolean
  logger: Logger
  /**
   * this daemon's node id (ensureNodeId: one per state dir), written into each run dir it makes; its sweep removes
   * a run dir its ledger does not know only when it carries this id, so daemons sharing a runs root never remove
   * each other's live runs. Default 'local' (tests of one target alone).
   */
  nodeId?: string
  /** the host name written beside the node id, for an admin reading a marker */
  host?: string
  /**
   * cluster mode: this node's name, written into each marker too. A run dir no ledger knows whose marker names a
   * cluster node gone for good (the sweep's `goneNode`: a name that joined this cluster, with no live member for
   * hostDeadAfterSeconds) is swept by a live node: its own node would never come back for it.
   */
  clusterNode?: string
  /** users whose per-user runs roots the sweep visits (a `{home}`/`{user}` root is found only through its user) */
  knownUsers?: () => Iterable<string>
  /** the deadline of each cleanup child (a `find` as the run's owner, who can stop it); default CLEANUP_DEADLINE_MS */
  cleanupDeadlineMs?: number
}

const RUN_ID_RE = /^[0-9A-Za-z]{14}$/
/** `.<runId>.<nodeId>.new`: a run dir being made (see provision) */
const NEW_RUN_DIR_RE = /^\.([0-9A-Za-z]{14})\.([0-9A-Za-z_-]{1,64})\.new$/
const newRunDirName = (runId: string, nodeId: string): string => `.${runId}.${nodeId}.new`
// A user name becomes one path component: no slash, no dot-only names, nothing a shell or find would misread.
const USER_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/

function errnoReason (err: unknown): string {
  const e = err as NodeJS.ErrnoException
  return typeof e?.code === 'string' ? `${e.code}${e.syscall !== undefined ? ' in ' + e.syscall : ''}` : 'unexpected error'
}

export function createHpcTarget (opts: HpcTargetOptions): Target {
  const { privileged } = opts
  const nodeId = opts.nodeId ?? 'local'
  const host = opts.host ?? 'localhost'
  const clusterNode = opts.clusterNode
  const cleanupDeadlineMs = opts.cleanupDeadlineMs ?? CLEANUP_DEADLINE_MS
  const log = opts.logger.child({ target: 'hpc' })
  let closed = false
  const perUser = isPerUserRoot(opts.runsRoot) ? createPerUserRoots({ template: opts.runsRoot, privileged, nodeId, host, log }) : null

  // A rerun's `.nf-<hash>.secrets` file at the path its task names (hpc/secrets-file.ts).
  const secretsFiles = createSecretsFiles({
    privileged,
    nodeId,
    host,
    cleanupDeadlineMs,
    sharedUserDir: async (user) => {
      const base = await root(false)
      return base === null ? null : await ensureUserDir(base, user, privileged, false)
    },
    perUserRoot: perUser === null ? null : run => perUser.rootOf(run)
  })

  // The runs root, checked (and created) on every call: an admin may have changed its modes since.
  async function root (create: boolean): Promise<string | null> {
    if (privileged) return await resolveTrustedDir(opts.runsRoot, create)
    // User mode: everything below is the daemon user's own, so plain calls suffice. NXF_SECRETS_FILE must
    // be absolute (Nextflow resolves a relative one against NXF_HOME).
    const abs = resolve(opts.runsRoot)
    // Following a symlink here is fine (a runs root linked to scratch space): it is the user's own tree. Looked at
    // first and made only when missing: a recursive mkdir of a root that is there costs two round trips of the thread
    // pool (mkdir, then its stat) on every arm, before the one stat that is needed anyway (issue 18).
    const statOrNull = async (): Promise<Stats | null> => await stat(abs).catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return null; throw err })
    let st = await statOrNull()
    if (st === null && create) {
      // Every dir this makes gets 0700 set explicitly: mkdir's mode is only what the umask leaves of it.
      const first = await mkdir(abs, { recursive: true, mode: 0o700 })
      if (first !== undefined) for (let p = abs; p.length >= first.length; p = dirname(p)) await chmod(p, 0o700)
      st = await statOrNull()
    }
    if (st === null) return null
    if (!st.isDirectory()) throw unsafePath(abs, 'not a directory')
    return abs
  }

  function checkRun (run: TargetRun): void {
    if (!RUN_ID_RE.test(run.runId)) throw unsafePath(run.runId, 'not a run id')
    if (!USER_RE.test(run.user)) throw unsafePath(run.user, 'not a plain user name')
    if (!Number.isInteger(run.uid) || run.uid < 0 || !Number.isInteger(run.gid) || run.gid < 0) {
      throw unsafePath(run.user, 'no valid uid/gid')
    }
  }

  function wrap (code: 'NFS_ERR_PROVISION_FAILED' | 'NFS_ERR_REVOKE_FAILED', err: unknown): CodedError {
    if (isCoded(err)) return err
    return nfsError(code, ['hpc', errnoReason(err)], err)
  }

  async function provision (run: TargetRun, secrets: ReadonlyMap<string, SecretValue>, opts: ProvisionOptions = {}): Promise<Placement> {
    if (closed) throw nfsError('NFS_ERR_TARGET_UNAVAILABLE', ['hpc', 'closed'])
    checkRun(run)
    for (const name of secrets.keys()) {
      if (!isValidSecretName(name)) throw nfsError('NFS_ERR_INVALID_NAME', [name])
    }
    let runDir: string | null = null
    let making: string | null = null
    let created = false
    try {
      if (run.secretsFile !== undefined) {
        const placed = await secretsFiles.provision(run, run.secretsFile, secrets, opts.ready)
        log.info({ runId: run.runId, user: run.user, count: secrets.size }, 'hpc rerun secrets file provisioned')
        return placed
      }
      if (perUser !== null) {
        const content = formatNextflowStore([...secrets].map(([name, v]) => ({ name, value: v.reveal() })))
        const storePath = await perUser.provision(run, content, opts.ready, () => { created = true })
        log.info({ runId: run.runId, user: run.user, count: secrets.size }, 'hpc store provisioned')
        return placement(run, storePath, secrets)
      }
      const base = (await root(true))!
      const userDir = (await ensureUserDir(base, run.user, privileged, true))!
      runDir = join(userDir, run.runId)
      // A retried call finds its earlier dir: start again from nothing (the run has not read it yet).
      // Anything but a plain directory there means someone interfered: refuse and touch nothing.
      // Made and marked under a name of its own, then renamed into place: a crash in between leaves a dir whose name
      // says it is this node's (the sweep removes it), never an unmarked run dir no sweep may touch.
      making = join(userDir, newRunDirName(run.runId, nodeId))
      // Made at once; one left by an earlier try of this node (its name holds the run and the node) is removed first.
      // The earlier try's run dir is looked for meanwhile: one round trip of the thread pool fewer (issue 18). Both
      // are settled before anything else, so that a failure of one never races the other's cleanup.
      const [existing, made] = await Promise.allSettled([
        lstatOrNull(runDir),
        makeRunDir(making).catch(async (err: unknown) => {
          if (!alreadyThere(err)) throw err
          await removeRunDir(making!, privileged, cleanupDeadlineMs)
          await makeRunDir(making!)
        })
      ])
      if (made.status === 'rejected') throw made.reason
      if (existing.status === 'rejected') throw existing.reason
      if (existing.value !== null) {
        if (existing.value.isSymbolicLink() || !existing.value.isDirectory()) throw unsafePath(runDir, 'not a plain directory')
        await removeRunDir(runDir, privileged, cleanupDeadlineMs)
      }
      const owner = privileged ? { uid: run.uid, gid: run.gid } : null
      const entries = [...secrets].map(([name, v]) => ({ name, value: v.reveal() }))
      // The dir, its marker and the staged store are made while the intent is written, the store beside the marker
      // and before the dir gets its name (issue 18: after the intent only its link remains); store.json appears once
      // the intent is on disk. A crash meanwhile leaves a marked dir with a staged file, which the sweep removes.
      const [marked, staged] = await Promise.allSettled([
        writeRunMarker(making, nodeId, host, owner, undefined, clusterNode),
        stageStore(making, Buffer.from(formatNextflowStore(entries), 'utf8'), owner)
      ])
      if (marked.status === 'rejected') {
        if (staged.status === 'fulfilled') await staged.value.close()
        throw marked.reason
      }
      if (staged.status === 'rejected') throw staged.reason
      const dir = staged.value
      let storePath: string
      try {
        await rename(making, runDir)
        created = true
        storePath = await placeStagedStore(dir, runDir, owner, opts.ready)
      } finally {
        await dir.close()
      }
      log.info({ runId: run.runId, user: run.user, count: secrets.size }, 'hpc store provisioned')
      return placement(run, storePath, secrets)
    } catch (err) {
      if (created && perUser !== null) {
        await perUser.remove(run).catch(cleanupErr => {
          log.error({ runId: run.runId, err: cleanupErr }, 'hpc provision cleanup failed')
        })
      } else if ((created ? runDir : making) !== null) {
        await removeRunDir((created ? runDir : making)!, privileged, cleanupDeadlineMs).catch(cleanupErr => {
          log.error({ runId: run.runId, err: cleanupErr }, 'hpc provision cleanup failed')
        })
      }
      log.warn({ runId: run.runId, user: run.user, err }, 'hpc provision failed')
      throw wrap('NFS_ERR_PROVISION_FAILED', err)
    }
  }

  function placement (run: TargetRun, storePath: string, secrets: ReadonlyMap<string, SecretValue>): Placement {
    return {
      env: { NXF_SECRETS_FILE: storePath, NXF_UUID: run.sessionId, NF_SECRETS_RUN_ID: run.runId },
      refs: [...secrets.keys()].sort().map(name => ({ name, ref: storePath }))
    }
  }

  // Remove one run dir; false when there was nothing (idempotent revoke, sweep counting).
  async function removeRun (user: string, runId: string): Promise<boolean> {
    const base = await root(false)
    if (base === null) return false
    const userDir = await ensureUserDir(base, user, privileged, false)
    if (userDir === null) return false
    // A crash between the intent and the rename leaves only this node's half-made dir: the revoke removes it too.
    const half = await removeRunDir(join(userDir, newRunDirName(runId, nodeId)), privileged, cleanupDeadlineMs)
    return await removeRunDir(join(userDir, runId), privileged, cleanupDeadlineMs) || half
  }

  async function revoke (run: TargetRun): Promise<void> {
    checkRun(run)
    try {
      const removed = run.secretsFile !== undefined
        ? await secretsFiles.revoke(run, run.secretsFile)
        : perUser !== null ? await perUser.remove(run) : await removeRun(run.user, run.runId)
      log.info({ runId: run.runId, user: run.user, removed }, 'hpc store revoked')
    } catch (err) {
      log.warn({ runId: run.runId, user: run.user, err }, 'hpc revoke failed')
      throw wrap('NFS_ERR_REVOKE_FAILED', err)
    }
  }

  async function sweep (liveness: (runId: string) => RunLiveness, scope?: SweepScope): Promise<number> {
    if (perUser !== null) {
      const n = await perUser.sweep(new Set(opts.knownUsers?.() ?? []), liveness)
      if (n > 0) log.info({ removed: n }, 'hpc sweep removed leftover stores')
      return n
    }
    const base = await root(false)
    if (base === null) return 0
    let removed = 0
    let foreign = 0
    for (const user of await readdir(base)) {
      if (!USER_RE.test(user)) continue
      let userDir: string | null
      try {
        userDir = await ensureUserDir(base, user, privileged, false)
      } catch (err) {
        log.warn({ user, err }, 'hpc sweep skipped an unsafe user directory')
        continue
      }
      if (userDir === null) continue
      for (const runId of await readdir(userDir)) {
        const making = NEW_RUN_DIR_RE.exec(runId)
        if (making !== null && liveness(making[1]!) !== 'live' && (making[2] === nodeId || sweepable(await readRunMarkerText(join(userDir, runId)), nodeId, clusterNode, scope?.goneNode))) {
          // A run dir this node (or a cluster node gone for good) was making when it crashed: never renamed into place.
          if (await removeRunDir(join(userDir, runId), privileged, cleanupDeadlineMs).catch(() => false)) removed++
          continue
        }
        if (!RUN_ID_RE.test(runId)) continue
        const state = liveness(runId)
        if (state === 'live') continue
        const runDir = join(userDir, runId)
        // Unknown to our ledger: ours only when we marked it, or a cluster node gone for good did. Another node's
        // live run, or a dir from before markers (its own ledger's revoke removes it), is left alone.
        if (state === 'unknown' && !sweepable(await readRunMarkerText(runDir), nodeId, clusterNode, scope?.goneNode)) {
          foreign++
          continue
        }
        try {
          if (await removeRunDir(runDir, privileged, cleanupDeadlineMs)) removed++
        } catch (err) {
          log.warn({ user, runId, err }, 'hpc sweep could not remove a run directory')
        }
      }
    }
    if (removed > 0) log.info({ removed }, 'hpc sweep removed leftover stores')
    if (foreign > 0) log.debug({ foreign }, 'hpc sweep left run dirs of other nodes (or unmarked) alone')
    return removed
  }

  async function status (): Promise<TargetStatus> {
    // Each user's root lives in their own tree, where the daemon does not look as root.
    if (perUser !== null) return { usable: true, detail: `per-user runs roots ${opts.runsRoot}` }
    let base: string
    try {
      base = (await root(true))!
    } catch (err) {
      return { usable: false, detail: `runs root ${opts.runsRoot} is not usable: ${isCoded(err) ? err.message : errnoReason(err)}` }
    }
    const fsType = await readMountFsType(base)
    const warnings = runsRootWarnings({
      resolved: base,
      fsType,
      hardLinks: await probeHardLinks(base),
      closedComponents: privileged ? await closedComponents(base) : []
    })
    return { usable: true, detail: `runs root ${base} on ${fsType ?? 'an unknown filesystem'}`, warnings }
  }

  return {
    name: 'hpc',
    provision,
    revoke,
    sweep,
    status,
    async close () { closed = true }
  }
}
