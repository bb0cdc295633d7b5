// `nf-secretsd cluster import [--state-dir D]` (CLUSTER.md "Contract"): copy a single node's store.json, the runs
// of its runs.json that still need an owner, and the watch roots of its watches.json (with their owners, as the file
// holds them), into an empty cluster prefix, once, under the same master key (the
// ciphertexts move as they are: etcd never sees a value or the key). The source state dir is locked, so no daemon
// changes it meanwhile. An import is all or nothing for the nodes: meta/store, which every node reads first, is
// written last, and a node refuses a prefix that holds data without it (an import cut short: run it again).
import { readFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import type { Namespace } from 'etcd3'
import { nfsError } from '../errors.js'
import { lockStateDir } from '../os/state-dir.js'
import { keyId } from '../store/crypto.js'
import { clusterError } from '../store/etcd/etcd-client.js'
import { readLedgerRuns } from '../store/run-ledger.js'
import { validateStore, verifyStore } from '../store/store-format.js'
import { validWatchFile, type StoredWatch } from '../store/watch-roots.js'
import { isTerminal } from '../types.js'
import { rootHash } from './watch-root-keys.js'

export interface ClusterImportOptions {
  ns: Namespace
  stateDir: string
  key: Buffer
}

export interface ClusterImportResult { secrets: number, workspaces: number, runs: number, watches: number, keyId: string }

/** etcd refuses a transaction of more than 128 operations by default. */
const OPS_PER_TXN = 100
export const IMPORT_INCOMPLETE = 'meta/import'

async function readJson (path: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as unknown
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw nfsError('NFS_ERR_STORE_UNREADABLE', [path, (err as Error).message.slice(0, 120)])
  }
}

/** The roots of a state dir's watches.json ([] without one); a file that is not one refuses the import. */
async function readWatches (stateDir: string): Promise<StoredWatch[]> {
  const path = join(stateDir, 'watches.json')
  const raw = await readJson(path)
  if (raw === null) return []
  if (!validWatchFile(raw)) throw nfsError('NFS_ERR_STORE_UNREADABLE', [path, 'not a watch list of format 1'])
  return raw.watches
}

/**
 * A root as the cluster keeps it (watches/<hash>, no poller yet: the first node that can see its path claims it, and
 * checks it as it does every root it polls). Create-only: a root already shared stays as it is.
 */
function watchOp (ns: Namespace, w: StoredWatch): ReturnType<Namespace['if']> {
  const key = `watches/${rootHash(w.root)}`
  return ns.if(key, 'Create', '==', 0).then(ns.put(key).value(JSON.stringify(w)))
}

export async function clusterImport (opts: ClusterImportOptions): Promise<ClusterImportResult> {
  const lock = await lockStateDir(opts.stateDir, hostname())
  try {
    const storePath = join(opts.stateDir, 'store.json')
    const raw = await readJson(storePath)
    if (raw === null) throw nfsError('NFS_ERR_STORE_UNREADABLE', [storePath, 'there is no store to import'])
    const data = validateStore(raw, storePath)
    verifyStore(data, opts.key, storePath)
    // runs.json and the journal after it: a daemon that crashed left its last changes only in the journal.
    const runs = (await readLedgerRuns(join(opts.stateDir, 'runs.json'))).filter(r => !isTerminal(r.state) || Object.values(r.targets).some(tr => tr !== undefined && tr.state !== 'revoked'))
    const watches = await readWatches(opts.stateDir)

    const { ns } = opts
    let existing: string[]
    try {
      existing = await ns.getAll().prefix('').limit(2).keys()
    } catch (err) {
      throw clusterError(err, 'checking that the cluster prefix is empty')
    }
    // A cut-short import left its own marker: it may be done again from the start.
    const partial = existing.includes(IMPORT_INCOMPLETE)
    if (existing.length > 0 && !partial) throw nfsError('NFS_ERR_CONFLICT', ['the cluster prefix is not empty; cluster import only fills an empty one'])
    const ops: unknown[] = []
    for (const s of data.secrets) {
      const { sealed, ...meta } = s
      ops.push(ns.put(`smeta/${s.scope}/${s.name}`).value(JSON.stringify(meta)), ns.put(`sval/${s.scope}/${s.name}`).value(JSON.stringify(sealed)))
    }
    for (const w of data.workspaces) ops.push(ns.put(`ws/${w.name}`).value(JSON.stringify(w)))
    // No owner key: the first node to start sees the runs as orphans and adopts them (CLUSTER.md "Takeover").
    for (const r of runs) ops.push(ns.put(`runs/${r.runId}`).value(JSON.stringify(r)))
    try {
      if (partial) await ns.delete().prefix('').exec()
      await ns.put(IMPORT_INCOMPLETE).value(JSON.stringify({ from: opts.stateDir, host: hostname(), at: new Date().toISOString() })).exec()
      for (let i = 0; i < ops.length; i += OPS_PER_TXN) {
        await ns.if(IMPORT_INCOMPLETE, 'Create', '>', 0).then(...(ops.slice(i, i + OPS_PER_TXN) as never[])).commit()
      }
      // Each root alone (create-only): two entries of one path in a hand-edited file make one root, not a failure.
      for (const w of watches) await watchOp(ns, w).commit()
      const done = await ns.if('meta/store', 'Create', '==', 0)
        .then(ns.put('meta/store').value(JSON.stringify({ format: 1, keyId: keyId(opts.key) })), ns.delete().key(IMPORT_INCOMPLETE)).commit()
      if (!done.succeeded) throw nfsError('NFS_ERR_CONFLICT', ['a node initialised the cluster store during the import'])
    } catch (err) {
      throw clusterError(err, 'importing into the cluster')
    }
    return { secrets: data.secrets.length, workspaces: data.workspaces.length, runs: runs.length, watches: watches.length, keyId: keyId(opts.key) }
  } finally {
    lock.release()
  }
}

export interface WatchImportResult { watches: number, present: number }

/**
 * `nf-secretsd cluster import watches`: a node that joins a running cluster brings the roots of its own watches.json
 * (its store stays behind: the cluster has one). Each root is copied create-only, so running it again, or on two
 * nodes whose files share a root, copies each root once and changes none already shared.
 */
export async function clusterImportWatches (opts: Omit<ClusterImportOptions, 'key'>): Promise<WatchImportResult> {
  const lock = await lockStateDir(opts.stateDir, hostname())
  try {
    const watches = await readWatches(opts.stateDir)
    const { ns } = opts
    let present = 0
    try {
      const meta = await ns.get('meta/store').exec()
      if (meta.kvs.length === 0) throw nfsError('NFS_ERR_CONFLICT', ['the cluster prefix holds no store yet; run `nf-secretsd cluster import` first'])
      for (const w of watches) if (!(await watchOp(ns, w).commit()).succeeded) present++
    } catch (err) {
      throw clusterError(err, 'importing watch roots into the cluster')
    }
    return { watches: watches.length - present, present }
  } finally {
    lock.release()
  }
}

/**
 * How many roots a state dir's watches.json holds (0: none, or not a file of ours). A node started in cluster mode
 * does not read it (docs/cluster.md "Watch roots"), and says so at its start, naming the file and the import.
 */
export async function localWatchRootCount (stateDir: string): Promise<number> {
  try {
    return (await readWatches(stateDir)).length
  } catch {
    return 0
  }
}
