// Who is listening, asked of the kernel before the CLI sends a byte that matters. The CLI finds its socket through
// flags and the environment (NF_SECRETS_SOCKET, XDG_RUNTIME_DIR), which another user can influence: an admin who
// `su`s from a user's session keeps that user's XDG_RUNTIME_DIR, and a fake daemon there would receive every value
// the admin types. SO_PEERCRED on the client end names the process that listened: the CLI talks only to root (a
// system daemon, or systemd holding its socket) or to its own user (a user-mode daemon), and to root alone on the
// system socket. Anything else is NFS_ERR_UNSAFE_PATH before the request is written.
import { connect, type Socket } from 'node:net'
import { nfsError, type CodedError } from '../errors.js'
import { SYSTEM_SOCKET } from '../os/paths.js'
// The one libc call Node lacks; the addon ships with the CLI in the same package.
import { native } from '../os/native.js'

/** Pure: the uids that may serve `path` to a CLI running as `myUid`. */
export function allowedServers (path: string, myUid: number): number[] {
  return path === SYSTEM_SOCKET || myUid === 0 ? [0] : [0, myUid]
}

function fdOf (socket: Socket): number | null {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd
  return typeof fd === 'number' && fd >= 0 ? fd : null
}

/** null when the server end of a connected socket may be trusted, else the error to stop with. */
export function serverRefusal (socket: Socket, path: string, myUid: number = process.getuid?.() ?? 0): CodedError | null {
  const allowed = allowedServers(path, myUid)
  let uid: number | null = null
  try {
    const fd = fdOf(socket)
    if (fd !== null) uid = native().peercred(fd).uid
  } catch {
    uid = null
  }
  if (uid !== null && allowed.includes(uid)) return null
  const who = allowed.length === 1 ? 'root' : 'root or you'
  const why = uid === null ? `the process listening could not be identified, and it must be ${who}` : `it is served by uid ${uid}, not by ${who}; nothing was sent`
  return nfsError('NFS_ERR_UNSAFE_PATH', [path, why])
}

/**
 * A `createConnection` for http.request and ws: a Unix socket that is checked once connected
 * and destroyed with the refusal if its server may not be trusted. Nothing is written before the check: both clients
 * buffer what they write until 'connect', and this listener, added first, runs before the buffered write.
 */
export function verifiedConnect (path: string, onRefused: (err: CodedError) => void): Socket {
  const socket = connect({ path })
  socket.once('connect', () => {
    const refusal = serverRefusal(socket, path)
    if (refusal !== null) {
      onRefused(refusal)
      socket.destroy(refusal)
    }
  })
  return socket
}
