// GET /events: a WebSocket of domain events, one JSON object a message, filtered to what concerns the caller.
import type { FastifyRequest } from 'fastify'
import type { ApiPlugin } from './type-provider.js'
import { roleIn } from '../rules/access.js'
import type { Caller } from '../types.js'
import type { EventBus, NfsEvent } from '../events.js'
import { workspaceScope } from '../rules/resolve.js'
import type { SecretsStore } from '../store/secrets-store.js'
import { upgradeRequired } from './client-errors.js'
import { keepAlive, pingInterval } from './ws-heartbeat.js'

/**
 * Pure visibility rule: what of `event` the caller may see, or null. Admins see all, users their own events; a
 * workspace member sees another member's events of that workspace, but a run's `names` only as far as the workspace
 * itself holds them: the rest came from that member's user secrets, which nobody else may list (SPEC 4).
 */
export function eventFor (caller: Caller, event: NfsEvent, store: Pick<SecretsStore, 'getWorkspace' | 'listSecrets'>): NfsEvent | null {
  if (caller.isAdmin || event.user === caller.user) return event
  if (event.workspace === undefined) return null
  const ws = store.getWorkspace(event.workspace)
  if (ws === undefined || roleIn(caller, ws) === null) return null
  // secret.* events of a workspace name its own secrets (one maybe just deleted): nothing personal there.
  if (event.names === undefined || !event.type.startsWith('run.')) return event
  const shared = new Set(store.listSecrets([workspaceScope(ws.name)]).map(s => s.name))
  return { ...event, names: event.names.filter(n => shared.has(n)) }
}

export interface EventsApiOptions {
  events: Pick<EventBus, 'subscribe'>
  /** read again for every event: rights may change while a stream is open */
  store: Pick<SecretsStore, 'getWorkspace' | 'listSecrets'>
  identify: (request: FastifyRequest) => Caller
  idleTimeoutSeconds: number
}

const eventsApi: ApiPlugin<EventsApiOptions> = async (api, { events, store, identify, idleTimeoutSeconds }) => {
  api.route({
    method: 'GET',
    url: '/events',
    handler: upgradeRequired,
    wsHandler: (socket, request) => {
      keepAlive(socket, pingInterval(idleTimeoutSeconds))
      const unsubscribe = events.subscribe((event) => {
        if (socket.readyState !== socket.OPEN) return
        // Rights are asked again for every event (NSS answers from a short cache, workspaces from memory): a user
        // taken out of the admin group or a workspace stops seeing its events, not only at the next connection.
        let caller: Caller
        try {
          caller = identify(request)
        } catch {
          socket.close(1008, 'caller no longer identified')
          return
        }
        // A listener runs inside whoever published (a run's provision): a failure here is this stream's alone.
        try {
          const shown = eventFor(caller, event, store)
          if (shown !== null) socket.send(JSON.stringify(shown))
        } catch (err) {
          request.log.error({ err }, 'event stream failed; closing it')
          socket.terminate()
        }
      })
      socket.on('close', unsubscribe)
      socket.on('error', unsubscribe)
    }
  })
}

export default eventsApi
