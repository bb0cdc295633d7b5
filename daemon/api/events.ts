// GET /events: a WebSocket of domain events, one JSON object a message, filtered to what concerns the caller.
import type { FastifyInstance } from 'fastify'
import { roleIn } from '../access.js'
import type { Caller } from '../types.js'
import type { NfsEvent } from '../events.js'
import type { SecretsStore } from '../store/secrets-store.js'
import { upgradeRequired } from '../client-errors.js'

/** Pure visibility rule: admins see all; others their own events and those of workspaces they belong to. */
export function visibleTo (caller: Caller, event: NfsEvent, store: Pick<SecretsStore, 'getWorkspace'>): boolean {
  if (caller.isAdmin || event.user === caller.user) return true
  if (event.workspace === undefined) return false
  const ws = store.getWorkspace(event.workspace)
  return ws !== undefined && roleIn(caller, ws) !== null
}

export default async function eventsApi (api: FastifyInstance): Promise<void> {
  const { deps } = api
  api.route({
    method: 'GET',
    url: '/events',
    handler: upgradeRequired,
    wsHandler: (socket, request) => {
      const caller = request.caller
      const unsubscribe = deps.events.subscribe((event) => {
        if (visibleTo(caller, event, deps.store) && socket.readyState === socket.OPEN) socket.send(JSON.stringify(event))
      })
      socket.on('close', unsubscribe)
      socket.on('error', unsubscribe)
    }
  })
}
