// The event bus behind GET /events. Events carry names and states, never values, and each subscriber sees only
// what concerns it (its own user's events and those of workspaces it belongs to; admins see all).
// secret.* and run.* events are not published by the code that writes: they are derived from the store's and the
// ledger's change feeds (follow; which events a change makes: secretEvents and runEvents, pure), so a node shows every change, its own and (in cluster mode) every other node's.
// In cluster mode watch.added/removed come from the shared watch roots' feed the same way.
import { EventEmitter } from 'node:events'
import type { LedgerChange, RunLedger } from './store/run-ledger.js'
import type { SecretsStore, StoreChange } from './store/secrets-store.js'
import type { RootChange } from './store/watch-roots.js'
import { isTerminal, type RunRecord, type TargetRecord } from './types.js'

import type { NfsEvent } from './contract/events.js'
export type { EventType, NfsEvent } from './contract/events.js'

export type FeedEvent = Omit<NfsEvent, 'at'>

/**
 * secret.created (a first version), secret.updated, secret.deleted, by whoever wrote it. Nothing for a lastUsed mark
 * (bookkeeping) nor for the secrets a workspace's deletion takes with it (no `by`: none were announced before either).
 */
export function secretEvents (c: StoreChange): FeedEvent[] {
  if (c.kind !== 'secret' || c.op === 'used' || c.by === undefined) return []
  const type = c.op === 'delete' ? 'secret.deleted' : c.version === 1 ? 'secret.created' : 'secret.updated'
  const ws = c.scope.startsWith('workspace:') ? c.scope.slice('workspace:'.length) : undefined
  return [{ type, user: c.by, ...(ws !== undefined ? { workspace: ws } : {}), names: [c.name] }]
}

/**
 * watch.added, watch.removed: named for the root's owner (as run events are for the run's), the root as the reason.
 * Cluster mode derives them from the shared roots' feed (one node announces its own changes itself). Pure.
 */
export function watchEvent (c: { op: RootChange['op'], watch: Pick<RootChange['watch'], 'root' | 'user' | 'workspace'> }): FeedEvent {
  const w = c.watch
  return { type: c.op === 'added' ? 'watch.added' : 'watch.removed', user: w.user, ...(c.op === 'added' && w.workspace !== null ? { workspace: w.workspace } : {}), reason: w.root }
}

/** A run event and what makes it unique in the run's life: each happens once, a failed revoke once per attempt. */
export interface RunEvent { event: FeedEvent, once: string }

const targetsOf = (r: RunRecord): TargetRecord[] => Object.values(r.targets).filter((t): t is TargetRecord => t !== undefined)
const allIn = (r: RunRecord, state: TargetRecord['state']): boolean => targetsOf(r).every(t => t.state === state)

/**
 * The run events of one write, from the record before it (null: the intent) to the record after, in the order they
 * happened. Several writes seen as one (a node catching up after a compaction) give the events of their sum.
 * - run.provisioned, then run.armed or run.started: every target placed, the run live, which it was not before;
 * - run.started: an armed run seen starting;
 * - run.completed|failed|killed|expired: the run ended (with its reason);
 * - run.revoke_failed: a target's revoke failed (again: once per attempt);
 * - run.revoked: an ended run whose targets are all revoked.
 */
export function runEvents (previous: RunRecord | null, run: RunRecord): RunEvent[] {
  const base = { user: run.user, workspace: run.workspace, runId: run.runId }
  const out: RunEvent[] = []
  const wasPlaced = previous !== null && allIn(previous, 'provisioned')
  if (!isTerminal(run.state) && allIn(run, 'provisioned') && !wasPlaced) {
    const opened = run.state === 'armed' ? 'run.armed' : 'run.started'
    out.push({ event: { ...base, type: 'run.provisioned', names: run.names, state: run.state }, once: 'run.provisioned' })
    out.push({ event: { ...base, type: opened, names: run.names, state: run.state }, once: opened })
  } else if (previous?.state === 'armed' && run.state === 'running') {
    out.push({ event: { ...base, type: 'run.started', state: 'running' }, once: 'run.started' })
  }
  const ended = run.state === 'completed' || run.state === 'failed' || run.state === 'killed' || run.state === 'expired' ? run.state : null
  if (ended !== null && (previous === null || !isTerminal(previous.state))) {
    out.push({ event: { ...base, type: `run.${ended}`, state: ended, ...(run.endReason !== null ? { reason: run.endReason } : {}) }, once: `run.${ended}` })
  }
  for (const [name, t] of Object.entries(run.targets)) {
    if (t?.state !== 'revoke_failed') continue
    const before = previous?.targets[name as keyof RunRecord['targets']]
    if (before?.state === 'revoke_failed' && before.attempts === t.attempts) continue
    out.push({ event: { ...base, type: 'run.revoke_failed', target: name, state: 'revoke_failed' }, once: `run.revoke_failed\0${name}\0${t.attempts}` })
  }
  const revoked = (r: RunRecord): boolean => isTerminal(r.state) && allIn(r, 'revoked')
  if (revoked(run) && (previous === null || !revoked(previous))) {
    out.push({ event: { ...base, type: 'run.revoked', names: run.names, state: run.state }, once: 'run.revoked' })
  }
  return out
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

  /**
   * Publish the events of every change of `store` and `ledger` from now on (secretEvents and runEvents say which); returns the
   * unsubscribe function. A change seen twice (a watch resumed after a reconnect or a compaction) makes no event
   * twice: changes are deduplicated by (key, revision), and a run's events by what they are (each once in the run's
   * life), which also covers a record first kept in memory (runs/deferred-records.ts) and written later.
   */
  follow (feeds: { store?: Pick<SecretsStore, 'onChange'>, ledger?: Pick<RunLedger, 'onChange'>, roots?: { onRoots: (l: (c: RootChange) => void) => () => void } }): () => void {
    const seen = new Map<string, number>()
    const fresh = (key: string, revision: number): boolean => {
      if ((seen.get(key) ?? -1) >= revision) return false
      seen.set(key, revision)
      return true
    }
    const done = new Map<string, Set<string>>()
    const onStore = (c: StoreChange): void => {
      // A lastUsed mark makes no event (secretEvents): twenty of them an arm need not be remembered either (issue 18).
      if (c.kind !== 'secret' || c.op === 'used' || !fresh(`secret\0${c.scope}\0${c.name}`, c.revision)) return
      for (const e of secretEvents(c)) this.publish(e)
    }
    const onLedger = (c: LedgerChange): void => {
      const key = `run\0${c.runId}`
      if (c.run === null) {
        // Pruned: nothing more will happen to it.
        seen.delete(key)
        done.delete(c.runId)
        return
      }
      if (c.durable !== false && !fresh(key, c.revision)) return
      let once = done.get(c.runId)
      for (const { event, once: id } of runEvents(c.previous, c.run)) {
        if (once?.has(id) === true) continue
        if (once === undefined) done.set(c.runId, once = new Set())
        once.add(id)
        this.publish(event)
      }
    }
    const onRoots = (c: RootChange): void => {
      if (fresh(`watch\0${c.watch.root}`, c.revision)) this.publish(watchEvent(c))
    }
    const off = [feeds.store?.onChange(onStore), feeds.ledger?.onChange(onLedger), feeds.roots?.onRoots(onRoots)]
    return () => { for (const f of off) f?.() }
  }
}
