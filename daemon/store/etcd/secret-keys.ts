// The secrets store's keys in etcd (CLUSTER.md "Keys"), shared by the store and its tombstones.
/** smeta/<scope>/<name>: a secret's metadata */
export const META = 'smeta/'
/** sval/<scope>/<name>: its sealed value (the key never enters etcd) */
export const VAL = 'sval/'
/** ws/<name>: a workspace */
export const WS = 'ws/'
/** sdel/<scope>/<name>: who deleted a secret last (tombstones.ts) */
export const GONE = 'sdel/'
/** wsdel/<name>: a workspace delete's tombstone, its nonce, so that the delete knows itself when its answer was lost */
export const WS_GONE = 'wsdel/'
/** the key id every node must share */
export const STORE_META = 'meta/store'
