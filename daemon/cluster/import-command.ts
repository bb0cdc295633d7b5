// The `nf-secretsd cluster import` command: the config's cluster section says where, the state dir what, and the
// master key is loaded as the daemon loads it (the cluster keeps using the same key). Loaded on demand by main.ts.
import { join } from 'node:path'
import type { Config } from '../config.js'
import { nfsError } from '../errors.js'
import { loadKey } from '../store/key.js'
import { connectEtcd } from '../store/etcd/etcd-client.js'
import { clusterImport, clusterImportWatches, type ClusterImportResult, type WatchImportResult } from './import.js'

/** `what`: everything into an empty prefix, or (`watches`) only the watch roots, into a cluster already running. */
export async function clusterImportCommand (config: Config, what: 'all' | 'watches' = 'all'): Promise<ClusterImportResult | WatchImportResult> {
  if (config.cluster === undefined) throw nfsError('NFS_ERR_CONFIG', [config.configFile ?? 'the config', 'cluster import needs a cluster section naming the etcd endpoints'])
  if (what === 'watches') {
    const conn = connectEtcd(config.cluster.etcd)
    try {
      return await clusterImportWatches({ ns: conn.ns, stateDir: config.stateDir })
    } finally {
      conn.close()
    }
  }
  const loaded = await loadKey({
    mode: config.mode,
    stateDir: config.stateDir,
    ...(config.keyFile !== null && config.mode === 'system' ? { keyFile: config.keyFile } : {}),
    ...(process.env.CREDENTIALS_DIRECTORY !== undefined ? { credentialsDirectory: process.env.CREDENTIALS_DIRECTORY } : {}),
    storePath: join(config.stateDir, 'store.json')
  })
  const conn = connectEtcd(config.cluster.etcd)
  try {
    return await clusterImport({ ns: conn.ns, stateDir: config.stateDir, key: loaded.key })
  } finally {
    conn.close()
  }
}
