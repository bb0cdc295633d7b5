// nf-secrets events: the daemon's event stream (GET /api/v1/events, a WebSocket over the Unix socket), one line per
// event until Ctrl-C or the daemon closes it. With --json each line is the event's JSON object, as the daemon sent it.
import type { IncomingMessage } from 'node:http'
import type WebSocket from 'ws'
import type { NfsEvent } from '../contract/events.js'
import type { Command, CommandContext } from './args.js'
import { checkedConnection, CliError, refusalFrom, unreachable, wsUrl } from './client.js'
import { safeText, shortTime } from './output.js'

/** An event as the daemon sends it; the type stays a plain string, so that a newer daemon's types still print. */
export type EventView = Omit<NfsEvent, 'type'> & { type: string }

/** One event for people: time, type, then the fields it carries. */
export function eventLine (e: EventView): string {
  const parts = [shortTime(e.at), safeText(e.type), `user=${safeText(e.user)}`]
  if (e.workspace !== undefined) parts.push(`workspace=${safeText(e.workspace)}`)
  if (e.runId !== undefined) parts.push(`run=${safeText(e.runId)}`)
  if (e.names !== undefined && e.names.length > 0) parts.push(`names=${e.names.map(safeText).join(',')}`)
  if (e.target !== undefined) parts.push(`target=${safeText(e.target)}`)
  if (e.state !== undefined) parts.push(`state=${safeText(e.state)}`)
  if (e.reason !== undefined) parts.push(`reason=${safeText(e.reason)}`)
  return parts.join('  ')
}

export async function streamEvents (ctx: CommandContext, socketPath: string): Promise<number> {
  const { default: WebSocketClient } = await import('ws')
  const checked = await checkedConnection(socketPath)
  return await new Promise((resolve, reject) => {
    const ws = new WebSocketClient(wsUrl(socketPath, '/events'), { handshakeTimeout: 10_000, createConnection: checked.createConnection })
    let settled = false
    const settle = (fn: () => void): void => {
      if (settled) return
      settled = true
      process.off('SIGINT', stop)
      process.off('SIGTERM', stop)
      fn()
    }
    // Ctrl-C is the normal way out of a stream: close cleanly and exit 0.
    const stop = (): void => { settle(() => resolve(0)); ws.close(1000) }
    process.on('SIGINT', stop)
    process.on('SIGTERM', stop)
    ws.on('open', () => {
      // On stderr, so stdout carries events only; scripts and tests also learn from it that the stream is live.
      ctx.io.stderr.write('nf-secrets: streaming events (Ctrl-C to stop)\n')
    })
    ws.on('message', (data: WebSocket.RawData) => {
      let event: EventView
      try {
        event = JSON.parse(data.toString()) as EventView
      } catch {
        return
      }
      ctx.out.line(event, () => eventLine(event))
    })
    let refused = false
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      // The daemon's coded refusal wins over the error ws raises once the attempt is dropped.
      refused = true
      void refusalFrom(res).then(err => settle(() => reject(err)))
    })
    ws.on('error', (err) => { if (!refused) settle(() => reject(checked.refusal() ?? unreachable(socketPath, err))) })
    ws.on('close', (code) => {
      // 1000/1001: the daemon closed the stream on purpose (shutting down); anything else is a lost daemon.
      if (code === 1000 || code === 1001) settle(() => resolve(0))
      else settle(() => reject(new CliError('NFS_ERR_UNAVAILABLE', `the event stream from ${socketPath} ended unexpectedly (close code ${code})`)))
    })
  })
}

export const eventsCommands: Command[] = [
  {
    path: ['events'],
    usage: '',
    summary: 'stream events as they happen (one JSON object a line with --json); Ctrl-C to stop',
    positionals: [0, 0],
    async run (ctx) {
      return await streamEvents(ctx, ctx.socketPath)
    }
  }
]
