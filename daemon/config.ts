// One schema for the config file. Defaults depend on the mode (SPEC section 2); the file and then the flags override
// them. Validation lists every error at once, so an admin fixes a broken file in one pass, and the result is frozen.
import { readFile } from 'node:fs/promises'
import { homedir, hostname } from 'node:os'
import { isAbsolute, join } from 'node:path'
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { nfsError } from './errors.js'
import type { Mode } from './types.js'
import { SYSTEM_SOCKET, userSocketPath } from './os/paths.js'

const Targets = Type.Array(Type.Union([Type.Literal('hpc'), Type.Literal('aws'), Type.Literal('memory')]), { uniqueItems: true })
const LogLevel = Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map(l => Type.Literal(l)))
const Strict = { additionalProperties: false }

export const WatchRootSchema = Type.Object({
  root: Type.String({ minLength: 1 }),
  depth: Type.Integer({ minimum: 0, maximum: 16, default: 3 }),
  workspace: Type.Optional(Type.String()),
  targets: Type.Optional(Targets),
  poll: Type.Boolean({ default: false }),
  intervalMs: Type.Integer({ minimum: 100, maximum: 600_000, default: 1000 })
}, Strict)

// Cluster mode (CLUSTER.md): several nodes share one store and ledger on etcd. Absent: the local files.
export const ClusterSchema = Type.Object({
  nodeName: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$' }),
  etcd: Type.Object({
    endpoints: Type.Array(Type.String({ pattern: '^https?://[^\\s/]+(:[0-9]+)?/?$' }), { minItems: 1 }),
    prefix: Type.String({ pattern: '^/[A-Za-z0-9._/-]*/$', default: '/nf-secretsd/v1/' }),
    caFile: Type.Union([Type.String({ minLength: 1 }), Type.Null()], { default: null }),
    certFile: Type.Union([Type.String({ minLength: 1 }), Type.Null()], { default: null }),
    keyFile: Type.Union([Type.String({ minLength: 1 }), Type.Null()], { default: null })
  }, Strict),
  leaseTtlSeconds: Type.Integer({ minimum: 5, maximum: 300, default: 15 }),
  hostDeadAfterSeconds: Type.Integer({ minimum: 10, maximum: 7 * 86400, default: 300 })
}, Strict)

export const ConfigSchema = Type.Object({
  socket: Type.String({ minLength: 1 }),
  stateDir: Type.String({ minLength: 1 }),
  logLevel: LogLevel,
  adminGroup: Type.String({ minLength: 1 }),
  keyFile: Type.Union([Type.String({ minLength: 1 }), Type.Null()]),
  hpc: Type.Object({
    runsRoot: Type.String({ minLength: 1 })
  }, Strict),
  runs: Type.Object({
    defaultTargets: Targets,
    defaultTtlSeconds: Type.Integer({ minimum: 1, maximum: 7 * 86400 }),
    retentionDays: Type.Number({ minimum: 0 }),
    revokeRetryInitialMs: Type.Integer({ minimum: 10 }),
    revokeRetryMaxMs: Type.Integer({ minimum: 100 }),
    livenessIntervalMs: Type.Integer({ minimum: 100 })
  }, Strict),
  api: Type.Object({
    bodyLimit: Type.Integer({ minimum: 1024, maximum: 16 * 1024 * 1024 })
  }, Strict),
  aws: Type.Object({
    region: Type.Union([Type.String(), Type.Null()]),
    endpoint: Type.Union([Type.String(), Type.Null()]),
    prefix: Type.String({ pattern: '^[A-Za-z0-9/_+=.@-]{1,256}$' }),
    kmsKeyId: Type.Union([Type.String(), Type.Null()]),
    tags: Type.Record(Type.String(), Type.String()),
    maxConcurrency: Type.Integer({ minimum: 1, maximum: 64 }),
    rateLimitPerSecond: Type.Number({ exclusiveMinimum: 0, maximum: 5000 }),
    burst: Type.Integer({ minimum: 1, maximum: 1000 }),
    sweepIntervalSeconds: Type.Integer({ minimum: 10 })
  }, Strict),
  watch: Type.Array(WatchRootSchema),
  limits: Type.Object({
    liveRunsPerUser: Type.Integer({ minimum: 1 }),
    connectionsPerUid: Type.Integer({ minimum: 1 }),
    idleTimeoutSeconds: Type.Integer({ minimum: 1, maximum: 86400 }),
    watchRootsPerUser: Type.Integer({ minimum: 0 }),
    watchedDirsPerUser: Type.Integer({ minimum: 0 }),
    minPollIntervalMs: Type.Integer({ minimum: 100, maximum: 600_000 })
  }, Strict),
  cluster: Type.Optional(ClusterSchema),
  launch: Type.Object({
    outputRetentionDays: Type.Number({ minimum: 0 }),
    replayBytes: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024 }),
    killGraceSeconds: Type.Integer({ minimum: 0, maximum: 3600 })
  }, Strict)
}, Strict)

export type WatchRoot = Static<typeof WatchRootSchema>
export type ClusterConfig = Static<typeof ClusterSchema>
export type Config = Static<typeof ConfigSchema> & { readonly mode: Mode, readonly configFile: string | null }

export interface Flags {
  mode?: Mode
  config?: string
  socket?: string
  stateDir?: string
  logLevel?: string
  /** cluster mode: this node's name (default: cluster.nodeName, else the host name) */
  nodeName?: string
}

export interface Environment {
  uid: number
  home: string
  env: NodeJS.ProcessEnv
}

export function currentEnvironment (): Environment {
  return { uid: process.getuid?.() ?? 0, home: homedir(), env: process.env }
}

/** The mode: system when root, user otherwise; the flag wins (root in a container may want user mode). */
export function resolveMode (flags: Flags, environment: Environment): Mode {
  return flags.mode ?? (environment.uid === 0 ? 'system' : 'user')
}

export function defaultConfigPath (mode: Mode, { home, env }: Environment): string {
  if (mode === 'system') return '/etc/nf-secretsd/config.json'
  return join(env.XDG_CONFIG_HOME || join(home, '.config'), 'nf-secretsd', 'config.json')
}

export { SYSTEM_SOCKET, userSocketPath }

/** The embedded defaults of each mode, as a plain object the file is merged onto. */
export function defaults (mode: Mode, environment: Environment): Static<typeof ConfigSchema> {
  const { home, env } = environment
  const stateDir = mode === 'system' ? '/var/lib/nf-secretsd' : join(env.XDG_STATE_HOME || join(home, '.local', 'state'), 'nf-secretsd')
  return {
    socket: mode === 'system' ? SYSTEM_SOCKET : userSocketPath(environment),
    stateDir,
    logLevel: 'info',
    adminGroup: 'nf-secrets-admin',
    keyFile: mode === 'system' ? '/etc/nf-secretsd/master.key' : null,
    hpc: { runsRoot: mode === 'system' ? join(stateDir, 'runs') : join(home, '.nf-secretsd', 'runs') },
    runs: {
      defaultTargets: ['hpc'],
      defaultTtlSeconds: 900,
      retentionDays: 30,
      revokeRetryInitialMs: 1000,
      revokeRetryMaxMs: 300_000,
      livenessIntervalMs: 5000
    },
    api: { bodyLimit: 1024 * 1024 },
    aws: {
      region: null,
      endpoint: null,
      prefix: 'nf-secrets/',
      kmsKeyId: null,
      tags: {},
      maxConcurrency: 8,
      rateLimitPerSecond: 40,
      // 40/s sustained plus 10 at once keeps any one second at or under the account's quota of 50.
      burst: 10,
      sweepIntervalSeconds: 300
    },
    watch: [],
    // SPEC section 11: what one user can make the daemon do; admins are not limited.
    limits: {
      liveRunsPerUser: 200,
      connectionsPerUid: 64,
      idleTimeoutSeconds: 60,
      watchRootsPerUser: 20,
      watchedDirsPerUser: 20_000,
      minPollIntervalMs: 1000
    },
    launch: { outputRetentionDays: 7, replayBytes: 256 * 1024, killGraceSeconds: 10 }
  }
}

function isPlainObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** Deep merge of objects; arrays and scalars of the override replace the base. */
function merge (base: unknown, override: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(override)) return override === undefined ? base : override
  const out: Record<string, unknown> = { ...base }
  for (const [k, v] of Object.entries(override)) out[k] = merge(base[k], v)
  return out
}

/**
 * The first character of a runs root that a shell would split or expand, described for a message, or null. Nextflow
 * writes the store's directory unquoted into each task's `.command.run`, so such a root breaks every grid task.
 */
export function unsafeRunsRootCharacter (path: string): string | null {
  const m = /[\s$`'"\\*?[\];&|<>()]/u.exec(path)
  if (m === null) return null
  const c = m[0]
  return /\s/u.test(c) ? `whitespace (U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')})` : `"${c}"`
}

/** Every problem of a candidate config, as `path: message` lines. Pure. */
export function configErrors (candidate: unknown, schema: TSchema = ConfigSchema): string[] {
  const errors = [...Value.Errors(schema, candidate)].map(e => `${e.path || '/'}: ${e.message}`)
  if (errors.length > 0) return [...new Set(errors)]
  const c = candidate as Static<typeof ConfigSchema>
  const paths: Array<[string, string | null]> = [['/socket', c.socket], ['/stateDir', c.stateDir], ['/hpc/runsRoot', c.hpc.runsRoot], ['/keyFile', c.keyFile]]
  c.watch.forEach((w, i) => paths.push([`/watch/${i}/root`, w.root]))
  for (const [path, value] of paths) {
    // A per-user runs root may start at the user's home: `{home}/...` (docs/config.md).
    const absolute = value === null || isAbsolute(value) || (path === '/hpc/runsRoot' && value.startsWith('{home}/'))
    if (!absolute) errors.push(`${path}: must be an absolute path`)
  }
  const unsafe = unsafeRunsRootCharacter(c.hpc.runsRoot)
  if (unsafe !== null) errors.push(`/hpc/runsRoot: holds ${unsafe}, which a shell would split or expand; Nextflow puts the store's directory unquoted into every task's wrapper`)
  if (c.cluster !== undefined) {
    for (const f of ['caFile', 'certFile', 'keyFile'] as const) {
      const v = c.cluster.etcd[f]
      if (v != null && !isAbsolute(v)) errors.push(`/cluster/etcd/${f}: must be an absolute path`)
    }
    if ((c.cluster.etcd.certFile == null) !== (c.cluster.etcd.keyFile == null)) errors.push('/cluster/etcd: certFile and keyFile go together')
    if (c.cluster.hostDeadAfterSeconds < c.cluster.leaseTtlSeconds) errors.push('/cluster/hostDeadAfterSeconds: must be >= leaseTtlSeconds')
  }
  if (c.runs.revokeRetryMaxMs < c.runs.revokeRetryInitialMs) errors.push('/runs/revokeRetryMaxMs: must be >= revokeRetryInitialMs')
  return errors
}

/**
 * Build the config from the mode's defaults, the file (when present, or required when named by --config) and the flags.
 * Throws NFS_ERR_CONFIG naming the file and listing every problem.
 */
export async function loadConfig (flags: Flags, environment: Environment = currentEnvironment()): Promise<Config> {
  const mode = resolveMode(flags, environment)
  const file = flags.config ?? defaultConfigPath(mode, environment)
  let fromFile: unknown = {}
  let used: string | null = null
  try {
    const text = await readFile(file, 'utf8')
    used = file
    try {
      fromFile = JSON.parse(text)
    } catch (err) {
      // JSON.parse messages quote the input; the config holds no secret values, but keep the message short anyway.
      throw nfsError('NFS_ERR_CONFIG', [file, `not valid JSON (${(err as Error).message.slice(0, 120)})`])
    }
    if (!isPlainObject(fromFile)) throw nfsError('NFS_ERR_CONFIG', [file, 'the top level must be a JSON object'])
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT' && flags.config === undefined) {
      fromFile = {}
    } else if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') {
      throw nfsError('NFS_ERR_CONFIG', [file, `cannot read it (${code})`])
    } else {
      throw err
    }
  }
  const overrides: Record<string, unknown> = {}
  if (flags.socket !== undefined) overrides.socket = flags.socket
  if (flags.stateDir !== undefined) overrides.stateDir = flags.stateDir
  if (flags.logLevel !== undefined) overrides.logLevel = flags.logLevel
  // A state dir moved by flag or file carries the default runs root along with it in system mode.
  const base = defaults(mode, environment)
  const stateDir = (overrides.stateDir ?? (fromFile as Record<string, unknown>).stateDir) as string | undefined
  if (mode === 'system' && typeof stateDir === 'string') base.hpc.runsRoot = join(stateDir, 'runs')
  const merged = merge(merge(base, fromFile), overrides) as Record<string, unknown>
  if (isPlainObject(merged.cluster)) {
    // The node name: the flag, else the file, else the host name (CLUSTER.md); the other fields take their defaults.
    const cluster = structuredClone(merged.cluster)
    if (flags.nodeName !== undefined) cluster.nodeName = flags.nodeName
    cluster.nodeName ??= hostname().split('.')[0]
    merged.cluster = Value.Default(ClusterSchema, cluster)
  } else if (flags.nodeName !== undefined) {
    throw nfsError('NFS_ERR_CONFIG', [used ?? file, '--node-name needs a cluster section'])
  }
  if (Array.isArray(merged.watch)) {
    merged.watch = merged.watch.map(w => isPlainObject(w) ? Value.Default(WatchRootSchema, structuredClone(w)) : w)
  }
  const errors = configErrors(merged)
  if (merged.cluster !== undefined && mode !== 'system') errors.push('/cluster: cluster mode is system mode only (root daemons hold the etcd credentials)')
  if (errors.length > 0) throw nfsError('NFS_ERR_CONFIG', [used ?? file, errors.join('; ')])
  return deepFreeze({ ...(merged as Static<typeof ConfigSchema>), mode, configFile: used })
}

function deepFreeze<T> (o: T): T {
  if (typeof o === 'object' && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v)
    Object.freeze(o)
  }
  return o
}
