// Who may hold a connection, decided when the kernel hands it over (SPEC 11, "connections per uid", "idle connection
// timeout"). Every accepted socket is counted against the uid SO_PEERCRED names; one over the limit is answered
// NFS_ERR_LIMIT (429) and closed without ever reaching the HTTP parser, so a user holding thousands of idle sockets
// costs the daemon no more than `connectionsPerUid` fds and never locks anyone else out. A connection with no request
// in flight for `idleMs` is closed; WebSockets leave this timer behind when they upgrade and are kept alive by pings
// instead (ws-heartbeat.ts).
import type { Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { nfsError } from '../errors.js'
import type { Logger } from '../logger.js'
import type { PeerCred } from './native.js'

/** The uid a connection is counted under when the kernel could not name its peer. */
export const UNKNOWN_UID = -1
// A refused socket is answered, then held open a moment so a client that writes its request meanwhile still reads
// the answer instead of EPIPE; a user refused many times over gets no such courtesy.
const LINGER_MS = 1000
const MAX_LINGERING_PER_UID = 16

export interface GateOptions {
  /** connections one non-admin uid may hold at once */
  perUid: number
  /** a connection with no request in flight this long is closed */
  idleMs: number
  /** reads (and remembers) the peer of a fresh socket; null when it cannot be read */
  peer: (socket: Socket) => PeerCred | null
  /** admins are not limited (SPEC 11); asked only when a uid reaches the limit */
  isAdmin: (cred: PeerCred) => boolean
  log: Logger
  /** told of every refusal (metrics) */
  onRefused?: (uid: number) => void
}

export type Admission = 'admit' | 'refuse'

/** Pure: may a uid holding `held` connections open one more? */
export function admission (held: number, limit: number, admin: boolean): Admission {
  return admin || held < limit ? 'admit' : 'refuse'
}

export function limitBody (limit: number): string {
  const err = nfsError('NFS_ERR_LIMIT', [`connectionsPerUid (${limit}): close some of your connections to nf-secretsd`])
  return JSON.stringify({ statusCode: err.statusCode, code: err.code, error: 'Too Many Requests', message: err.message })
}

export class ConnectionGate {
  readonly #opts: GateOptions
  readonly #held = new Map<number, number>()
  readonly #lingering = new Map<number, number>()
  /** requests in flight per socket: only a socket with none is idle */
  readonly #busy = new WeakMap<Socket, number>()

  constructor (opts: GateOptions) {
    this.#opts = opts
  }

  /** Connections held now by a uid (refused ones excluded). */
  held (uid: number): number {
    return this.#held.get(uid) ?? 0
  }

  /**
   * Put the gate in front of an http.Server's own connection listener. Node offers no hook between accept and the
   * HTTP parser, so the server's listeners are taken off and called only for admitted sockets. Call it once, after
   * the server is built and before it listens.
   */
  install (server: Server): void {
    const inner = server.listeners('connection') as Array<(socket: Socket) => void>
    server.removeAllListeners('connection')
    server.on('connection', (socket: Socket) => {
      // Whatever happens to this socket later, an error on it is never an unhandled 'error' event.
      socket.on('error', (err: NodeJS.ErrnoException) => this.#opts.log.debug({ code: err.code }, 'connection error'))
      if (!this.#accept(socket)) return
      for (const listener of inner) listener.call(server, socket)
    })
    // Node calls socket.setTimeout(server.timeout) on each connection and, on expiry, hands the socket to this
    // listener instead of destroying it: a request still being served (a slow AWS provision) is never cut.
    server.timeout = this.#opts.idleMs
    server.keepAliveTimeout = this.#opts.idleMs
    server.on('timeout', (socket: Socket) => {
      if ((this.#busy.get(socket) ?? 0) > 0) return
      this.#opts.log.debug('idle connection closed')
      socket.destroy()
    })
    server.on('request', (req: { socket: Socket }, res: ServerResponse) => {
      const socket = req.socket
      this.#busy.set(socket, (this.#busy.get(socket) ?? 0) + 1)
      let done = false
      const finished = (): void => {
        if (done) return
        done = true
        this.#busy.set(socket, Math.max(0, (this.#busy.get(socket) ?? 1) - 1))
      }
      res.once('finish', finished)
      res.once('close', finished)
    })
  }

  #accept (socket: Socket): boolean {
    const cred = this.#opts.peer(socket)
    const uid = cred?.uid ?? UNKNOWN_UID
    const held = this.held(uid)
    // NSS is asked only at the limit: below it every uid is admitted alike.
    const admin = held >= this.#opts.perUid && cred !== null && this.#isAdmin(cred)
    if (admission(held, this.#opts.perUid, admin) === 'refuse') {
      this.#refuse(socket, uid)
      return false
    }
    this.#held.set(uid, held + 1)
    socket.once('close', () => {
      const n = (this.#held.get(uid) ?? 1) - 1
      if (n <= 0) this.#held.delete(uid)
      else this.#held.set(uid, n)
    })
    return true
  }

  #isAdmin (cred: PeerCred): boolean {
    try {
      return this.#opts.isAdmin(cred)
    } catch {
      return false
    }
  }

  #refuse (socket: Socket, uid: number): void {
    this.#opts.onRefused?.(uid)
    this.#opts.log.warn({ uid, limit: this.#opts.perUid }, 'connection refused: connectionsPerUid reached')
    const body = limitBody(this.#opts.perUid)
    const answer = `HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
    const lingering = this.#lingering.get(uid) ?? 0
    if (lingering >= MAX_LINGERING_PER_UID) {
      socket.end(answer, () => socket.destroy())
      return
    }
    this.#lingering.set(uid, lingering + 1)
    // Read and drop what the client sends (its request), so its write does not fail before it reads the answer.
    socket.resume()
    socket.end(answer)
    const timer = setTimeout(() => socket.destroy(), LINGER_MS)
    timer.unref()
    socket.once('close', () => {
      clearTimeout(timer)
      const n = (this.#lingering.get(uid) ?? 1) - 1
      if (n <= 0) this.#lingering.delete(uid)
      else this.#lingering.set(uid, n)
    })
  }
}
