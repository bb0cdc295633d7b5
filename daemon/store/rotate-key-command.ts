// `nf-secretsd rotate-key`: offline re-encryption of the store under a new key. The daemon must be stopped, or it
// would write the store back under the old key from memory.
import { hostname } from 'node:os'
import { join } from 'node:path'
import type { Config } from '../config.js'
import { nfsError } from '../errors.js'
import { probeSocket } from '../os/socket.js'
import { lockStateDir } from '../os/state-dir.js'
import { loadKey } from './key.js'
import { rotateKey, type RotateKeyResult } from './secrets-store.js'

export async function rotateKeyCommand (config: Config, newKeyFile: string | undefined): Promise<RotateKeyResult> {
  // The cluster's secrets are in etcd, not in this state dir: re-encrypting store.json would leave etcd under the old
  // key while this node loads the new one (and then refuses to start, NFS_ERR_KEY). Not supported yet (docs/cluster.md).
  if (config.cluster !== undefined) throw nfsError('NFS_ERR_CONFIG', [config.configFile ?? 'the config', 'rotate-key works on a single node\'s store.json only; in cluster mode the key cannot be rotated yet (docs/cluster.md)'])
  if (await probeSocket(config.socket)) throw nfsError('NFS_ERR_CONFLICT', [`the daemon is running on ${config.socket}; stop it before rotate-key`])
  // A daemon on another socket (or another node) would write the store back under the old key: its lock says so.
  const lock = await lockStateDir(config.stateDir, hostname())
  try {
    return await rotateLocked(config, newKeyFile)
  } finally {
    lock.release()
  }
}

async function rotateLocked (config: Config, newKeyFile: string | undefined): Promise<RotateKeyResult> {
  const path = join(config.stateDir, 'store.json')
  const loaded = await loadKey({
    mode: config.mode,
    stateDir: config.stateDir,
    ...(config.keyFile !== null && config.mode === 'system' ? { keyFile: config.keyFile } : {}),
    ...(process.env.CREDENTIALS_DIRECTORY !== undefined ? { credentialsDirectory: process.env.CREDENTIALS_DIRECTORY } : {}),
    storePath: path
  })
  return await rotateKey({
    stateDir: config.stateDir,
    path,
    oldKey: loaded.key,
    keyFile: loaded.keyFile,
    ...(newKeyFile !== undefined ? { newKeyFile } : {})
  })
}
