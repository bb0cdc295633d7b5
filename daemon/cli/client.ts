// The CLI's side of the socket: where the daemon is, and JSON requests to it over node:http. Every answer the daemon
// refuses comes back as its coded error (SPEC section 7); a daemon that does not answer is NFS_ERR_UNAVAILABLE (exit 69).
import { existsSync } from 'node:fs'
import type { ClientRequest, IncomingMessage } from 'node:http'
import type { Socket, createConnection } from 'node:net'
import { homedir } from 'node:os'
import { nfsError } from '../errors.js'
import { SYSTEM_SOCKET, userSocketPath } from '../os/paths.js'

export interface SocketChoice {
  path: string
  /** where the path came from, for the unreachable message */
  from: 'flag' | 'env' | 'user' | 'system'
}

/**
 * SPEC section 2: `--socket`, then `NF_SECRETS_SOCKET`, then the user socket when it exists, then the system socket.
 * `exists` is injected so the order is testable without making sockets.
 */
export function discoverSocket (flag: string | undefined, env: NodeJS.ProcessEnv, home: string = homedir(), exists: (p: string) => boolean = existsSync): SocketChoice {
  if (flag !== undefined && flag !== '') return { path: flag, from: 'flag' }
  const fromEnv = env.NF_SECRETS_SOCKET
  if (fromEnv !== undefined && fromEnv !== '') return { path: fromEnv, from: 'env' }
  const user = userSocketPath({ home, env })
  if (exists(user)) return { path: user, from: 'user' }
  return { path: SYSTEM_SOCKET, from: 'system' }
}

/** The error a daemon answered with, or one the CLI made itself; `code` decides the exit status. */
export class CliError extends Error {
  readonly code: string
  readonly statusCode: number | undefined

  constructor (code: string, message: string, statusCode?: number) {
    super(message)
    this.code = code
    this.statusCode = statusCode
  }
}

export interface RequestOptions {
  query?: Record<string, string | undefined>
  body?: unknown
  /** extra request headers (If-Match) */
  headers?: Record<string, string>
}

export interface ApiClient {
  readonly socketPath: string
  request: <T = unknown>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, options?: RequestOptions) => Promise<T>
  close: () => Promise<void>
}

/**
 * Pure: which daemon a socket belongs to and how that daemon is started, for the unreachable message. The system
 * socket is the system-mode daemon (an admin's unit); any other path is taken for a user-mode daemon.
 */
export function startHint (socketPath: string): string {
  return socketPath === SYSTEM_SOCKET
    ? 'the system-mode daemon is not running: an admin starts it with `systemctl start nf-secretsd`; for a user-mode daemon of your own: `systemctl --user enable --now nf-secretsd` (docs/install.md)'
    : 'no user-mode daemon answers there: start yours with `systemctl --user start nf-secretsd` (or `nf-secretsd --mode user`); --socket or NF_SECRETS_SOCKET picks another'
}

// Any failure before an answer (ENOENT, ECONNREFUSED, EACCES, a reset) means the daemon is not there, or not for us.
export function unreachable (socketPath: string, err: unknown): CliError {
  const code = (err as { code?: unknown }).code
  const reason = typeof code === 'string' ? code : 'no answer'
  const e = nfsError('NFS_ERR_UNAVAILABLE', [socketPath, `${reason}; ${startHint(socketPath)}`])
  return new CliError(e.code, e.message)
}

/** `/api/v1/x` plus the query string of the defined entries. */
export function apiPath (path: string, query?: Record<string, string | undefined>): string {
  const params = new URLSearchParams()
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) params.set(k, v)
  const qs = params.toString()
  return `/api/v1${path}${qs === '' ? '' : `?${qs}`}`
}

/** The coded error of a refused request, from the daemon's JSON body (or a generic one when the body is not ours). */
export function errorFromBody (statusCode: number, text: string): CliError {
  try {
    const body = JSON.parse(text) as { code?: unknown, message?: unknown }
    if (typeof body.code === 'string' && typeof body.message === 'string') return new CliError(body.code, body.message, statusCode)
  } catch {
    // not JSON: fall through
  }
  return new CliError('NFS_ERR_INTERNAL', `the daemon answered HTTP ${statusCode} without a coded error`, statusCode)
}

export function openClient (socketPath: string): ApiClient {
  // node:http, not undici: loading undici cost about 160 ms of every call's 250-310 ms (issue 17), and the CLI sends
  // one or two small requests per process. One connection per request and no agent (a createConnection of our own means none): nothing lingers after the answer.
  const open = new Set<ClientRequest>()
  return {
    socketPath,
    async request<T> (method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, options: RequestOptions = {}): Promise<T> {
      const [{ request }, { verifiedConnect }] = await Promise.all([import('node:http'), import('./server-check.js')])
      const payload = options.body === undefined ? undefined : JSON.stringify(options.body)
      const { statusCode, text } = await new Promise<{ statusCode: number, text: string }>((resolve, reject) => {
        // Who listens is checked on 'connect', before the buffered request is written (server-check.ts): a value
        // never reaches a stranger.
        let refusal: CliError | null = null
        const req = request({
          method,
          path: apiPath(path, options.query),
          host: 'localhost',
          createConnection: () => verifiedConnect(socketPath, (e) => { refusal = new CliError(e.code, e.message) }),
          headers: { ...options.headers, ...(payload === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }) }
        }, (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }))
          res.on('error', (err) => reject(unreachable(socketPath, err)))
        })
        open.add(req)
        req.on('close', () => open.delete(req))
        req.on('error', (err) => reject(refusal ?? (err instanceof CliError ? err : unreachable(socketPath, err))))
        req.end(payload)
      })
      if (statusCode >= 400) throw errorFromBody(statusCode, text)
      if (text === '') return undefined as T
      try {
        return JSON.parse(text) as T
      } catch {
        throw new CliError('NFS_ERR_INTERNAL', 'the daemon answered with something that is not JSON')
      }
    },
    async close (): Promise<void> {
      for (const req of open) req.destroy()
    }
  }
}

/** The `ws` package's URL for a WebSocket route over a Unix socket. */
export function wsUrl (socketPath: string, path: string): string {
  return `ws+unix://${socketPath}:${apiPath(path)}`
}

/** The daemon's coded answer to a WebSocket upgrade it refused (not found, forbidden, ...), as the CLI's error. */
export async function refusalFrom (res: IncomingMessage): Promise<CliError> {
  const text = await new Promise<string>((resolve) => {
    const chunks: Buffer[] = []
    res.on('data', (c: Buffer) => chunks.push(c))
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    res.on('error', () => resolve(''))
  })
  return errorFromBody(res.statusCode ?? 500, text)
}

/**
 * For a WebSocket (events, attach): a createConnection that checks who listens before the upgrade is written
 * (server-check.ts), and the refusal, if that is why the connection failed.
 */
export async function checkedConnection (socketPath: string): Promise<{ createConnection: typeof createConnection, refusal: () => CliError | null }> {
  const { verifiedConnect } = await import('./server-check.js')
  let refusal: CliError | null = null
  const make = (): Socket => verifiedConnect(socketPath, (e) => { refusal = new CliError(e.code, e.message) })
  return { createConnection: make as unknown as typeof createConnection, refusal: () => refusal }
}
