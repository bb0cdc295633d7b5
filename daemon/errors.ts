// Every coded error of nf-secretsd. The API, the CLI and the tests match on `code`, never on message text.
// docs/errors.md lists every code here; test/errors.test.ts keeps the two in step.
import createError from '@fastify/error'

/** The CLI's exit codes (SPEC section 6). */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  forbidden: 4,
  conflict: 5,
  unavailable: 69,
  /** nf-secretsd only: another daemon holds the state dir (sysexits EX_TEMPFAIL) */
  stateInUse: 75,
  config: 78
} as const

interface ErrorSpec { status: number, message: string, exit: number }

// One table, so the HTTP status and the CLI exit code of a code never drift apart.
export const ERROR_SPECS = {
  NFS_ERR_BAD_REQUEST: { status: 400, message: 'Bad request: %s', exit: EXIT.usage },
  NFS_ERR_USAGE: { status: 400, message: '%s', exit: EXIT.usage },
  NFS_ERR_BODY_TOO_LARGE: { status: 413, message: 'Request body is larger than %s bytes', exit: EXIT.usage },
  NFS_ERR_INVALID_NAME: { status: 400, message: 'Invalid secret name %s: it must match Nextflow\'s rule (letters, digits and single underscores, no leading digit, 2 to 100 characters, not starting with "__")', exit: EXIT.usage },
  NFS_ERR_INVALID_WORKSPACE: { status: 400, message: 'Invalid workspace name %s: use 1 to 64 of [a-z0-9_-], starting with a letter or digit', exit: EXIT.usage },
  NFS_ERR_INVALID_ROLE: { status: 400, message: 'Invalid role %s: one of owner, admin, maintain, launch, connect, view', exit: EXIT.usage },
  NFS_ERR_VALUE_SIZE: { status: 400, message: 'Secret value must be 1 to 65536 bytes (64 KiB) of UTF-8 as stored, got %s bytes; with --base64 the limit is 49152 bytes (48 KiB) before encoding', exit: EXIT.usage },
  NFS_ERR_VALUE_ENCODING: { status: 400, message: 'Secret value is not valid UTF-8 or contains NUL', exit: EXIT.usage },
  NFS_ERR_VALUE_CHARACTER: { status: 400, message: 'Secret value contains %s, which Nextflow cannot pass safely to grid tasks; encode the value with --base64', exit: EXIT.usage },
  NFS_ERR_SECRET_MISSING: { status: 404, message: 'The pipeline references secrets that resolve to nothing: %s (nothing was provisioned; --allow-missing runs without them)', exit: EXIT.notFound },
  NFS_ERR_UNKNOWN_SECRET: { status: 400, message: 'No secret named %s is available to this run', exit: EXIT.usage },
  NFS_ERR_INVALID_TARGET: { status: 400, message: 'Unknown or unconfigured target %s', exit: EXIT.usage },
  NFS_ERR_INVALID_PATH: { status: 400, message: 'Invalid path %s', exit: EXIT.usage },
  NFS_ERR_NOT_FOUND: { status: 404, message: 'Route %s not found', exit: EXIT.notFound },
  NFS_ERR_SECRET_NOT_FOUND: { status: 404, message: 'Secret %s not found', exit: EXIT.notFound },
  NFS_ERR_WORKSPACE_NOT_FOUND: { status: 404, message: 'Workspace %s not found', exit: EXIT.notFound },
  NFS_ERR_MEMBER_NOT_FOUND: { status: 404, message: '%s is not a member of workspace %s', exit: EXIT.notFound },
  NFS_ERR_RUN_NOT_FOUND: { status: 404, message: 'Run %s not found', exit: EXIT.notFound },
  NFS_ERR_WATCH_NOT_FOUND: { status: 404, message: 'No watch on %s', exit: EXIT.notFound },
  NFS_ERR_POLICY_NOT_FOUND: { status: 404, message: 'No policy template named %s', exit: EXIT.notFound },
  NFS_ERR_UNKNOWN_USER: { status: 404, message: 'No such user or group %s', exit: EXIT.notFound },
  NFS_ERR_FORBIDDEN: { status: 403, message: 'Permission denied: %s', exit: EXIT.forbidden },
  NFS_ERR_PEER_REFUSED: { status: 403, message: 'This daemon runs in user mode and serves only uid %s', exit: EXIT.forbidden },
  NFS_ERR_SECRET_EXISTS: { status: 409, message: 'Secret %s already exists in %s; use update', exit: EXIT.conflict },
  NFS_ERR_WORKSPACE_EXISTS: { status: 409, message: 'Workspace %s already exists', exit: EXIT.conflict },
  NFS_ERR_WATCH_EXISTS: { status: 409, message: 'A watch on %s already exists', exit: EXIT.conflict },
  NFS_ERR_CONFLICT: { status: 409, message: 'Conflict: %s', exit: EXIT.conflict },
  NFS_ERR_RUN_STATE: { status: 409, message: 'Run %s is %s', exit: EXIT.conflict },
  NFS_ERR_LIMIT: { status: 429, message: 'Limit reached: %s', exit: EXIT.failure },
  NFS_ERR_TARGET_UNAVAILABLE: { status: 503, message: 'Target %s is not usable: %s', exit: EXIT.failure },
  NFS_ERR_PROVISION_FAILED: { status: 502, message: 'Provisioning to %s failed, nothing was left behind: %s', exit: EXIT.failure },
  NFS_ERR_REVOKE_FAILED: { status: 502, message: 'Revoking from %s failed, it will be retried: %s', exit: EXIT.failure },
  NFS_ERR_UNSAFE_PATH: { status: 400, message: 'Refusing to use %s: %s', exit: EXIT.failure },
  NFS_ERR_STORAGE: { status: 507, message: 'Could not write %s durably: %s', exit: EXIT.failure },
  NFS_ERR_LAUNCH_FAILED: { status: 500, message: 'Could not start the command: %s', exit: EXIT.failure },
  NFS_ERR_CONFIG: { status: 500, message: 'Configuration error in %s: %s', exit: EXIT.config },
  NFS_ERR_STORE_UNREADABLE: { status: 500, message: 'Cannot read %s: %s', exit: EXIT.config },
  NFS_ERR_KEY: { status: 500, message: 'Encryption key problem with %s: %s', exit: EXIT.config },
  NFS_ERR_SOCKET_IN_USE: { status: 500, message: 'Another nf-secretsd is already listening on %s', exit: EXIT.config },
  NFS_ERR_ADDON: { status: 500, message: 'The native addon could not be loaded from %s: %s', exit: EXIT.config },
  NFS_ERR_STATE_IN_USE: { status: 500, message: 'State dir %s is in use by another nf-secretsd (%s)', exit: EXIT.stateInUse },
  NFS_ERR_CLUSTER_UNAVAILABLE: { status: 503, message: 'The cluster store (etcd) is not reachable or has no quorum while %s; the change was not made, or not confirmed (read it back before trying again)', exit: EXIT.unavailable },
  NFS_ERR_UNAVAILABLE: { status: 503, message: 'Daemon not reachable at %s: %s', exit: EXIT.unavailable },
  NFS_ERR_INTERNAL: { status: 500, message: 'Internal error (see the daemon log, request %s)', exit: EXIT.failure }
} as const satisfies Record<string, ErrorSpec>

export type ErrorCode = keyof typeof ERROR_SPECS

export interface CodedError extends Error {
  code: ErrorCode
  statusCode: number
}

// Made on first use: building all of them cost every CLI call milliseconds for the one or none it throws.
const ctors = new Map<string, ReturnType<typeof createError>>()
function ctorOf (code: ErrorCode): ReturnType<typeof createError> {
  let ctor = ctors.get(code)
  if (ctor === undefined) {
    const spec: ErrorSpec = ERROR_SPECS[code]
    ctor = createError(code, spec.message, spec.status)
    ctors.set(code, ctor)
  }
  return ctor
}

/**
 * Build a coded error. Arguments fill the `%s` slots in order; they must never be secret values.
 * `cause` keeps the underlying failure for the log without putting it in the message a client sees.
 */
export function nfsError (code: ErrorCode, args: unknown[] = [], cause?: unknown): CodedError {
  const Ctor = ctorOf(code)
  const err = new Ctor(...args) as unknown as CodedError
  if (cause !== undefined) (err as Error & { cause?: unknown }).cause = cause
  return err
}

export function isCoded (err: unknown, code?: ErrorCode): err is CodedError {
  if (typeof err !== 'object' || err === null) return false
  const c = (err as { code?: unknown }).code
  return typeof c === 'string' && c in ERROR_SPECS && (code === undefined || c === code)
}

export function exitCodeFor (code: string | undefined): number {
  if (code !== undefined && code in ERROR_SPECS) return ERROR_SPECS[code as ErrorCode].exit
  return EXIT.failure
}
