// Run identities: a 14-character runId of [0-9A-Za-z] (about 83 bits) and a session UUID for NXF_UUID.
import { createHash, randomBytes, randomUUID } from 'node:crypto'

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
export const RUN_ID_RE = /^[0-9A-Za-z]{14}$/

function toRunId (bytes: () => Buffer): string {
  let out = ''
  while (out.length < 14) {
    for (const b of bytes()) {
      // Rejection sampling keeps every character equally likely (248 = 4 * 62).
      if (b < 248 && out.length < 14) out += ALPHABET[b % 62]
    }
  }
  return out
}

export function newRunId (): string {
  return toRunId(() => randomBytes(16))
}

/**
 * The runId of the auto-run of one Nextflow start (CLUSTER.md "Auto-runs"), derived from the launch dir, the session
 * UUID and the run name: every node that sees the start computes the same id, and the ledger's create-only insert
 * (create_revision == 0 on etcd) lets exactly one of them make the run. The run name is in the key because a
 * `-resume` reuses its session UUID: each start has a name of its own. Pure.
 */
export function autoRunId (launchDir: string, sessionId: string, runName: string): string {
  let round = 0
  return toRunId(() => createHash('sha256').update(`nf-secretsd auto-run\0${round++}\0${launchDir}\0${sessionId}\0${runName}`).digest())
}

export function newSessionId (): string {
  return randomUUID()
}
