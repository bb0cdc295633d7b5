// Names, tags and idempotency tokens of the secrets a run gets in Secrets Manager. Pure functions: the sweep
// and a revoke after a crash must find the same names from nothing but the run id and the secret names.
import { createHash } from 'node:crypto'

export const DEFAULT_PREFIX = 'nf-secrets/'

export const TAG_RUN = 'nf-secretsd:run'
export const TAG_HOST = 'nf-secretsd:host'
/** the daemon that made the secret: its cluster node name, or its state dir's node id on one node (the sweep's scope) */
export const TAG_NODE = 'nf-secretsd:node'
export const TAG_USER = 'nf-secretsd:user'
export const TAG_WORKSPACE = 'nf-secretsd:workspace'

// Characters Secrets Manager allows in a name. The prefix also ends up in IAM resource ARNs, where `*` and `?`
// would be wildcards, so they are refused along with everything else.
const PREFIX_RE = /^[A-Za-z0-9/_+=.@-]{1,256}$/

export function isValidPrefix (prefix: string): boolean {
  return PREFIX_RE.test(prefix)
}

export function runPrefix (prefix: string, runId: string): string {
  return `${prefix}${runId}/`
}

export function secretName (prefix: string, runId: string, name: string): string {
  return `${runPrefix(prefix, runId)}${name}`
}

/**
 * The run a secret belongs to, from its name, when it carries no run tag (a secret created by hand, or tags
 * lost). Undefined when the name is not `<prefix><runId>/<NAME>`.
 */
export function runIdFromName (prefix: string, fullName: string): string | undefined {
  if (!fullName.startsWith(prefix)) return undefined
  const m = /^([0-9A-Za-z]+)\/[^/]+$/.exec(fullName.slice(prefix.length))
  return m?.[1]
}

/**
 * CreateSecret's ClientRequestToken: the same run and name always give the same token, so a create that is
 * retried after a lost response is recognised by AWS as the one that already happened. UUID-shaped (36
 * characters, inside AWS's 32 to 64) and derived from names only, never from a value.
 */
export function requestToken (runId: string, name: string): string {
  const h = createHash('sha256').update(`nf-secretsd\0${runId}\0${name}`).digest('hex')
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`
}

export interface TagOwner {
  runId: string
  host: string
  node: string
  user: string
  workspace: string
}

/** Configured tags first, ours last: our keys are what the sweep relies on, so they cannot be overridden. */
export function buildTags (owner: TagOwner, extra: Record<string, string> = {}): Array<{ Key: string, Value: string }> {
  const tags = new Map(Object.entries(extra))
  tags.set(TAG_RUN, owner.runId)
  tags.set(TAG_HOST, owner.host)
  tags.set(TAG_NODE, owner.node)
  tags.set(TAG_USER, owner.user)
  tags.set(TAG_WORKSPACE, owner.workspace)
  return [...tags].map(([Key, Value]) => ({ Key, Value }))
}

export function tagValue (tags: ReadonlyArray<{ Key?: string, Value?: string }> | undefined, key: string): string | undefined {
  return tags?.find((t) => t.Key === key)?.Value
}
