// GET /events: what one message of the stream holds (SPEC 7). Names and states, never a value. Shared by the daemon's
// event bus and the CLI's `events` command.

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
