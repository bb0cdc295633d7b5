// The etcd v3 client as cluster mode uses it (CLUSTER.md "Client settings that matter"): every unary call has a 2 s
// deadline (the client has none by default, and a partitioned member then stalls calls for tens of seconds), gRPC
// keepalives notice a dead connection in about 6 s, and failures reach callers as NFS_ERR_CLUSTER_UNAVAILABLE.
// Loaded only in cluster mode (a dynamic import), so the CLI and single-node daemons never pay for gRPC.
import { readFileSync } from 'node:fs'
import { Etcd3, type IOptions, type Namespace } from 'etcd3'
import { isCoded, nfsError, type CodedError } from '../../errors.js'

export interface EtcdConnectOptions {
  endpoints: string[]
  /** every key lives under it, e.g. /nf-secretsd/v1/ */
  prefix: string
  caFile?: string | null
  certFile?: string | null
  keyFile?: string | null
  /** deadline of one unary call (default 2000 ms) */
  callTimeoutMs?: number
}

export interface EtcdConnection {
  client: Etcd3
  /** the client scoped to the prefix: keys in and out are relative to it */
  ns: Namespace
  close: () => void
}

type WatchBackoff = NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>

/**
 * The watch's reconnect delay: doubling from `ms` up to `maxMs`. The client's default grows to 30 s, so after a
 * partition of 15 s a node's view of the cluster stayed stale for 28 s after the heal (test/cluster/partition.test.ts).
 */
export function cappedBackoff (ms: number, maxMs: number): WatchBackoff {
  return { duration: ms, next: () => cappedBackoff(Math.min(maxMs, ms * 2), maxMs) }
}

export function connectEtcd (opts: EtcdConnectOptions): EtcdConnection {
  const timeout = opts.callTimeoutMs ?? 2000
  const tls = opts.caFile != null || opts.certFile != null
  const client = new Etcd3({
    hosts: opts.endpoints,
    ...(tls
      ? {
          credentials: {
            rootCertificate: readFileSync(opts.caFile!),
            ...(opts.certFile != null ? { certChain: readFileSync(opts.certFile), privateKey: readFileSync(opts.keyFile!) } : {})
          }
        }
      : {}),
    defaultCallOptions: (ctx) => ctx.isStream ? {} : { deadline: Date.now() + timeout },
    grpcOptions: {
      'grpc.keepalive_time_ms': 5000,
      'grpc.keepalive_timeout_ms': 1000,
      'grpc.keepalive_permit_without_calls': 1,
      // gRPC's own reconnect backoff reaches 120 s by default: a member back after an outage would stay unused that long.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1000
    },
    faultHandling: { watchBackoff: cappedBackoff(50, 1000) }
    // The client's default fault handling stays: a circuit breaker per member and four tries across members (the
    // first and three retries), so a call to a dead member goes on to a live one. Every write we send is a
    // compare-and-swap or idempotent, so a try repeated after a lost answer cannot apply twice; and a compare-and-swap
    // repeated after its own commit fails its compare on its own write, which it then reads back and knows as its own
    // (own-write.ts), as it does when every try failed.
  })
  return { client, ns: client.namespace(opts.prefix), close: () => { client.close() } }
}

/** Any failure to reach etcd (no quorum, deadline, connection refused) as our coded error; coded errors pass. */
export function clusterError (err: unknown, what: string): CodedError {
  if (isCoded(err)) return err
  return nfsError('NFS_ERR_CLUSTER_UNAVAILABLE', [what], err)
}
