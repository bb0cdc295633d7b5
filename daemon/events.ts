// The event bus behind GET /events. Events carry names and states, never values, and each subscriber sees only
// what concerns it (its own user's events and those of workspaces it belongs to; admins see all).
import { EventEmitter } from 'node:events'

export type EventType =
  | 'secret.created' | 'secret.updated' | 'secret.deleted'
  | 'run.armed' | 'run.started' | 'run.provisioned' | 'run.completed' | 'run.failed' | 'run.killed'
  | 'run.expired' | 'run.revoked' | 'run.revoke_failed' | 'run.skipped' | 'run.warning'
  | 'watch.added' | 'watch.removed' | 'watch.degraded'

export interface NfsEvent {
  type: EventType
  at: string
  user: string
  workspace?: string
  runId?: string
  names?: string[]
  target?: string
  state?: string
  reason?: string
}

export class EventBus {
  readonly #emitter = new EventEmitter()
  readonly #clock: () => Date

  constructor (clock: () => Date = () => new Date()) {
    this.#clock = clock
    // Every /events socket is a listener; a busy login node may have many.
    this.#emitter.setMaxListeners(0)
  }

  publish (event: Omit<NfsEvent, 'at'>): NfsEvent {
    const full: NfsEvent = { ...event, at: this.#clock().toISOString() }
    this.#emitter.emit('event', full)
    return full
  }

  subscribe (listener: (e: NfsEvent) => void): () => void {
    this.#emitter.on('event', listener)
    return () => { this.#emitter.off('event', listener) }
  }
}
