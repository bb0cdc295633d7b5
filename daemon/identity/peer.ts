// Peer credentials, read once per connection when it is accepted (SO_PEERCRED gives the credentials of the
// process that connected, fixed at connect time), then looked up per request. Nothing a client sends can change them.
import type { Server, IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { nfsError } from '../errors.js'
import type { Caller } from '../types.js'
import { native, type PeerCred } from '../os/native.js'
import type { UserDirectory } from './users.js'

const creds = new WeakMap<Socket, PeerCred>()

function fdOf (socket: Socket): number | null {
  const handle = (socket as unknown as { _handle?: { fd?: number } })._handle
  return typeof handle?.fd === 'number' && handle.fd >= 0 ? handle.fd : null
}

/**
 * Read and remember the peer of a freshly accepted connection (the connection gate calls it first thing); null when
 * the kernel cannot name it, and such a connection is refused per request below.
 */
export function readPeer (socket: Socket): PeerCred | null {
  const fd = fdOf(socket)
  if (fd === null) return null
  try {
    const cred = native().peercred(fd)
    creds.set(socket, cred)
    return cred
  } catch {
    return null
  }
}

/** For a server without a connection gate (tests): records the peer of every accepted connection. */
export function recordPeers (server: Server): void {
  server.on('connection', (socket: Socket) => { readPeer(socket) })
}

export function peerOf (req: IncomingMessage): PeerCred | undefined {
  return creds.get(req.socket)
}

/** The production identify(): kernel credentials or nothing. */
export function peerIdentifier (users: UserDirectory): (request: { raw: IncomingMessage }) => Caller {
  return (request) => {
    const cred = peerOf(request.raw)
    if (cred === undefined) {
      native() // an addon that does not load is NFS_ERR_ADDON, not a caller we could not identify
      throw nfsError('NFS_ERR_FORBIDDEN', ['the caller could not be identified by its socket credentials'])
    }
    return users.callerFor(cred)
  }
}
