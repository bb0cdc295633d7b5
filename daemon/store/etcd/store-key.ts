// The master key every node of a cluster must share (CLUSTER.md "Keys": meta/store holds its key id, never the key).
// Checked once at open, before anything is served, as the file store does: the first node writes the key id, every
// later one must hold the same key, and every sealed value is decrypted once.
import type { Namespace } from 'etcd3'
import { nfsError } from '../../errors.js'
import type { Scope } from '../../types.js'
import { keyId, open, type Sealed } from '../crypto.js'
import { clusterError } from './etcd-client.js'
import type { Replica } from './replica.js'
import { STORE_META, VAL } from './secret-keys.js'

const WHERE = 'the cluster store'

/**
 * Agree on `key` with the store the started `replica` mirrors: NFS_ERR_KEY for another key, NFS_ERR_STORE_UNREADABLE
 * for an unfinished import or a value that fails authentication. Returns the key id.
 */
export async function agreeOnKey (ns: Namespace, replica: Replica, key: Buffer): Promise<string> {
  const id = keyId(key)
  let stored = replica.get(STORE_META)
  if (replica.get('meta/import') !== undefined) {
    throw nfsError('NFS_ERR_STORE_UNREADABLE', [WHERE, 'a cluster import did not finish; run `nf-secretsd cluster import` again'])
  }
  if (stored === undefined) {
    try {
      await ns.if(STORE_META, 'Create', '==', 0).then(ns.put(STORE_META).value(JSON.stringify({ format: 1, keyId: id }))).commit()
    } catch (err) {
      throw clusterError(err, 'initialising the cluster store')
    }
    await replica.barrier()
    stored = replica.get(STORE_META)
  }
  const have = (JSON.parse(stored!.value.toString()) as { keyId: string }).keyId
  if (have !== id) {
    throw nfsError('NFS_ERR_KEY', [WHERE, `it was encrypted with key id ${have} but the key loaded has id ${id}: every node needs the same master key`])
  }
  for (const [k, e] of replica.list(VAL)) {
    const [scope, ...rest] = k.slice(VAL.length).split('/')
    try {
      open(key, scope as Scope, rest.join('/'), JSON.parse(e.value.toString()) as Sealed)
    } catch (err) {
      throw nfsError('NFS_ERR_STORE_UNREADABLE', [WHERE, `secret ${k.slice(VAL.length)} fails authentication (altered or moved)`], err)
    }
  }
  return id
}
