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

/** Pure: the run id of the rerun a marker says made the run dir again (secrets-file.ts), or null. */
export function parseRerunMark (text: string): string | null {
  try {
    const rerun = (JSON.parse(text) as { rerun?: unknown }).rerun
    return typeof rerun === 'string' && rerun !== '' ? rerun : null
  } catch {
    return null
  }
}
