// Which live node should adopt an orphaned run first (CLUSTER.md "Takeover"). Every survivor sees a dead node's own/
// keys go at the same moment; if each tried every run, N nodes would send N transactions per run and all but one
// would fail, and a herd of 20 nodes and 1,000 runs would send 20,000 at once, past etcd's deadlines. So each run has
// one preferred adopter: a live node on the run's own host (it alone can read the head's pid and session lock), else
// the winner of rendezvous hashing over the live node names (the load spreads evenly, and when a node goes only its
// share moves). The others wait a grace period and then try what is still orphaned: the preference only saves work,
// the transaction's compares still decide, so two nodes that disagree about who is alive stay safe. Pure.
import { createHash } from 'node:crypto'
import { sameHost } from '../rules/host-name.js'

function score (runId: string, node: string): string {
  return createHash('sha1').update(runId).update('\0').update(node).digest('hex')
}

/** The node that should adopt the run first, from the live nodes (name and host); null when none is live. */
export function preferredAdopter (run: { runId: string, host: string }, live: ReadonlyArray<{ name: string, host: string }>): string | null {
  if (live.length === 0) return null
  const onHost = live.filter(n => sameHost(n.host, run.host)).map(n => n.name).sort()
  if (onHost.length > 0) return onHost[0]!
  let best: string | null = null
  let bestScore = ''
  for (const n of live) {
    const s = score(run.runId, n.name)
    if (best === null || s > bestScore || (s === bestScore && n.name < best)) {
      best = n.name
      bestScore = s
    }
  }
  return best
}

/** Run `fn` over `items`, at most `limit` at a time. */
export async function inPool<T> (items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}
