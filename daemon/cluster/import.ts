// `nf-secretsd cluster import [--state-dir D]` (CLUSTER.md "Contract"): copy a single node's store.json, and the runs
// of its runs.json that still need an owner, into an empty cluster prefix, once, under the same master key (the
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
import { validateStore, verifyStore } from '../store/store-format.js'
import { isTerminal, type RunRecord } from '../types.js'

export interface ClusterImportOptions {
  ns: Namespace
  stateDir: string
  key: Buffer
}

export interface ClusterImportResult { secrets: number, workspaces: number, runs: number, keyId: string }

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

export async function clusterImport (opts: ClusterImportOptions): Promise<ClusterImportResult> {
  const lock = await lockStateDir(opts.stateDir, hostname())
  try {
    const storePath = join(opts.stateDir, 'store.json')
    const raw = await readJson(storePath)
    if (raw === null) throw nfsError('NFS_ERR_STORE_UNREADABLE', [storePath, 'there is no store to import'])
    const data = validateStore(raw, storePath)
    verifyStore(data, opts.key, storePath)
    const ledger = await readJson(join(opts.stateDir, 'runs.json')) as { runs?: RunRecord[] } | null
    const runs = (ledger?.runs ?? []).filter(r => !isTerminal(r.state) || Object.values(r.targets).some(tr => tr !== undefined && tr.state !== 'revoked'))

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
      const done = await ns.if('meta/store', 'Create', '==', 0)
        .then(ns.put('meta/store').value(JSON.stringify({ format: 1, keyId: keyId(opts.key) })), ns.delete().key(IMPORT_INCOMPLETE)).commit()
      if (!done.succeeded) throw nfsError('NFS_ERR_CONFLICT', ['a node initialised the cluster store during the import'])
    } catch (err) {
      throw clusterError(err, 'importing into the cluster')
    }
    return { secrets: data.secrets.length, workspaces: data.workspaces.length, runs: runs.length, keyId: keyId(opts.key) }
  } finally {
    lock.release()
  }
}
