// Errors raised before a request reaches the routes, and so before the error handler of server.ts: the HTTP parser
// refusing a request (bad framing, unknown method, headers too large) and fastify refusing a URL it cannot decode.
// fastify's defaults answer those with a body of their own, without an NFS_ERR_* code; these answer them in the
// coded shape of SPEC section 7, with fixed messages (a rejected request is never echoed: it may hold a value).
import type { Socket } from 'node:net'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import { nfsError } from '../errors.js'

function codedBody (reason: string): string {
  const err = nfsError('NFS_ERR_BAD_REQUEST', [reason])
  return JSON.stringify({ statusCode: err.statusCode, code: err.code, error: 'Bad Request', message: err.message })
}

const PARSER_REASONS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: 'the request headers are too large',
  ERR_HTTP_REQUEST_TIMEOUT: 'the request was not received in time',
  HPE_INVALID_METHOD: 'unknown HTTP method'
}

/** For fastify's `clientErrorHandler`: answer 400 in the coded shape, then close the connection. */
export function clientErrorHandler (err: NodeJS.ErrnoException, socket: Socket): void {
  // A reset connection has no one left to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return
  const body = codedBody(PARSER_REASONS[err.code ?? ''] ?? 'malformed HTTP request')
  if (socket.writable) {
    socket.write(`HTTP/1.1 400 Bad Request\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`)
  }
  socket.destroy()
}

/** For fastify's `frameworkErrors`: a URL that does not decode, a parameter over the length limit. */
export function frameworkErrors (err: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const reason = err.code === 'FST_ERR_BAD_URL' ? 'the URL is not validly percent-encoded' : 'the URL is not acceptable'
  void reply.code(400).type('application/json; charset=utf-8').send(codedBody(reason))
}

/**
 * The plain-HTTP handler of a WebSocket route: @fastify/websocket's default answers a request without an upgrade
 * with an empty 404, which is neither true (the route exists) nor coded.
 */
export async function upgradeRequired (): Promise<never> {
  throw nfsError('NFS_ERR_BAD_REQUEST', ['this route needs a WebSocket upgrade'])
}
