// buildServer(deps): the fastify instance with every route, never listening by itself. main.ts listens; tests inject.
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyError, type FastifyRequest } from 'fastify'
import websocket from '@fastify/websocket'
import { isCoded, nfsError } from './errors.js'
import { clientErrorHandler, frameworkErrors } from './api/client-errors.js'
import { requestLogger } from './api/request-logger.js'
import type { ServerDeps } from './deps.js'
import type { Caller } from './types.js'
import type { TypeBoxTypeProvider } from './api/type-provider.js'
import systemApi from './api/system.js'
import secretsApi from './api/secrets.js'
import secretsImportApi from './api/secrets-import.js'
import workspacesApi from './api/workspaces.js'
import eventsApi from './api/events.js'
import runsApi from './api/runs.js'
import watchesApi from './api/watches.js'
import policiesApi from './api/policies.js'
import attachApi from './api/attach.js'

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller
  }
}

let reqCounter = 0

/** Turn anything thrown into the coded error shape of SPEC section 7: never a stack, never a value. */
export function toCoded (err: FastifyError, request: FastifyRequest): { statusCode: number, body: Record<string, unknown> } {
  let coded
  if (isCoded(err)) {
    coded = err
  } else if (err.validation !== undefined) {
    // ajv's messages name the field and the rule, not the data.
    const first = err.validation[0]
    const where = first?.instancePath ? `${err.validationContext ?? 'body'}${first.instancePath}` : (err.validationContext ?? 'request')
    coded = nfsError('NFS_ERR_BAD_REQUEST', [`${where} ${first?.message ?? 'is invalid'}`])
  } else if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    coded = nfsError('NFS_ERR_BODY_TOO_LARGE', [request.server.initialConfig.bodyLimit])
  } else if (typeof err.code === 'string' && err.code.startsWith('FST_ERR_CTP_')) {
    // JSON.parse messages quote the body, which may hold a value: use a fixed message.
    coded = nfsError('NFS_ERR_BAD_REQUEST', ['malformed or unsupported request body'])
  } else if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
    coded = nfsError('NFS_ERR_BAD_REQUEST', [err.code ?? 'invalid request'])
  } else {
    coded = nfsError('NFS_ERR_INTERNAL', [request.id])
  }
  return {
    statusCode: coded.statusCode,
    body: { statusCode: coded.statusCode, code: coded.code, error: httpReason(coded.statusCode), message: coded.message }
  }
}

function httpReason (status: number): string {
  const reasons: Record<number, string> = {
    400: 'Bad Request',
    403: 'Forbidden',
    404: 'Not Found',
    409: 'Conflict',
    413: 'Payload Too Large',
    429: 'Too Many Requests',
    500: 'Internal Server Error',
    502: 'Bad Gateway',
    503: 'Service Unavailable',
    507: 'Insufficient Storage'
  }
  return reasons[status] ?? 'Error'
}

export async function buildServer (deps: ServerDeps): Promise<FastifyInstance> {
  // The type provider gives each route's request the types of its schemas (api/type-provider.ts): no casts.
  const app = Fastify({
    loggerInstance: deps.logger.child({ room: 'api' }) as unknown as FastifyBaseLogger,
    bodyLimit: deps.config.api.bodyLimit,
    // request.log is made at the request's first line, not for every request (api/request-logger.ts).
    childLoggerFactory: requestLogger,
    genReqId: () => `r${(++reqCounter).toString(36)}`,
    // Types are checked, not coerced: a number where a string belongs is an error, not a silent conversion.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, allErrors: false } },
    forceCloseConnections: true,
    return503OnClosing: true,
    clientErrorHandler,
    frameworkErrors
  }).withTypeProvider<TypeBoxTypeProvider>()
  app.decorateRequest('caller', null as unknown as Caller)

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const { statusCode, body } = toCoded(err, request)
    if (statusCode >= 500) request.log.error({ err, code: body.code }, 'request failed')
    else request.log.info({ code: body.code }, 'request refused')
    return reply.code(statusCode).send(body)
  })
  app.setNotFoundHandler((request, reply) => {
    const err = nfsError('NFS_ERR_NOT_FOUND', [`${request.method} ${request.url.split('?')[0]}`])
    return reply.code(404).send({ statusCode: 404, code: err.code, error: 'Not Found', message: err.message })
  })

  // Identity comes from the kernel for every request; a refused peer (user mode, other uid) stops here.
  app.addHook('onRequest', async (request) => {
    request.caller = deps.identify(request)
  })

  await app.register(websocket, { options: { maxPayload: 64 * 1024 } })
  await app.register(async (api) => {
    const { store, audit, cluster } = deps
    await api.register(systemApi, {
      store,
      mode: deps.config.mode,
      version: deps.version,
      startedAt: deps.startedAt,
      clock: deps.clock,
      ...(deps.runs !== undefined ? { runs: deps.runs } : {}),
      ...(deps.watches !== undefined ? { watches: deps.watches } : {}),
      ...(deps.stateWarnings !== undefined ? { stateWarnings: deps.stateWarnings } : {}),
      ...(cluster !== undefined ? { cluster: cluster.status } : {})
    })
    await api.register(secretsApi, { store, audit })
    await api.register(secretsImportApi, { store, audit })
    await api.register(workspacesApi, { store, audit, users: deps.users })
    await api.register(eventsApi, { events: deps.events, store, identify: deps.identify, idleTimeoutSeconds: deps.config.limits.idleTimeoutSeconds })
    if (deps.runs !== undefined) {
      // The node answering for a run's end, beside the head's host (CLUSTER.md): a single node answers for all its runs.
      const ownerOf = cluster !== undefined ? (runId: string) => cluster.ownerOf(runId) : (_runId: string, host: string) => deps.node ?? host
      await api.register(runsApi, { runs: deps.runs, ownerOf, ...(deps.pty !== undefined ? { pty: deps.pty } : {}) })
    }
    if (deps.watches !== undefined) await api.register(watchesApi, { watches: deps.watches })
    await api.register(policiesApi, { aws: deps.config.aws })
    if (deps.pty !== undefined) await api.register(attachApi, { pty: deps.pty, idleTimeoutSeconds: deps.config.limits.idleTimeoutSeconds })
  }, { prefix: '/api/v1' })
  if (deps.metrics !== undefined) {
    const metrics = deps.metrics
    app.get('/metrics', async (_request, reply) => reply.type(metrics.contentType).send(await metrics.render()))
  }
  return app
}
