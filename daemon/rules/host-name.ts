// One host under two spellings. Pure, and below both rooms that ask: the lifecycle (whose head runs on this host,
// runs/liveness/reach.ts) and cluster mode (which nodes live on a host, cluster/host-watch.ts).

/** `login1` and `Login1.cluster.example` are one host: the first label, case-insensitively. */
export function hostKey (host: string): string {
  return (host.split('.')[0] ?? host).toLowerCase()
}

export function sameHost (a: string, b: string): boolean {
  return hostKey(a) === hostKey(b)
}
