// The mark each run dir carries: which daemon (node id, one per state dir) made it. Kept apart from safe-fs.ts so the
// child that works in a user's tree (user-tree.ts) loads nothing else.

/** The file in each run dir naming the daemon (state dir) that made it. */
export const MARKER_NAME = '.nf-secretsd-node'

/** Pure: the node id in a marker's text, or null. */
export function parseRunMarker (text: string): string | null {
  try {
    const node = (JSON.parse(text) as { node?: unknown }).node
    return typeof node === 'string' && node !== '' ? node : null
  } catch {
    return null
  }
}

/**
 * Pure: the cluster node name in a marker's text (cluster mode writes it beside the state dir's node id), or null: a
 * single-node daemon's, or one written before 2 Dec.
 */
export function parseRunMarkerCluster (text: string): string | null {
  try {
    const cluster = (JSON.parse(text) as { cluster?: unknown }).cluster
    return typeof cluster === 'string' && cluster !== '' ? cluster : null
  } catch {
    return null
  }
}

/**
 * Pure: may a sweep remove a run dir its ledger does not know, by its marker's text (null: none)? Only when this node
 * marked it, or a cluster node gone for good did (`goneNode`: a name that joined the cluster, with no live member for
 * hostDeadAfterSeconds; its own node never comes back for it). Another node's, an unmarked dir: never.
 */
export function sweepable (text: string | null, nodeId: string, clusterNode: string | undefined, goneNode?: (node: string) => boolean): boolean {
  if (text === null) return false
  if (parseRunMarker(text) === nodeId) return true
  const cluster = parseRunMarkerCluster(text)
  return cluster !== null && cluster !== clusterNode && goneNode?.(cluster) === true
}

/** Pure: the run id of the rerun a marker says made the run dir again (secrets-file.ts), or null. */
export function parseRerunMark (text: string): string | null {
  try {
    const rerun = (JSON.parse(text) as { rerun?: unknown }).rerun
    return typeof rerun === 'string' && rerun !== '' ? rerun : null
  } catch {
    return null
  }
}
