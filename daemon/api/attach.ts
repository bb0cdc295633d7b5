// GET /runs/:id/attach: a WebSocket onto a launched run's terminal. Out: binary frames of terminal output (the
// replay first, then live), and a final text frame `{type:'exit', state, exitCode, signal}` before the close.
// In: text frames `{type:'input', data}` (keystrokes) and `{type:'resize', cols, rows}`. Closing detaches; the run
// goes on. Only the run's owner may attach; anyone else, and any unknown id, gets NFS_ERR_RUN_NOT_FOUND before
// the upgrade.
import type { WebSocket } from 'ws'
import { nfsError } from '../errors.js'
import { upgradeRequired } from './client-errors.js'
import type { Attachment } from '../pty/host.js'
import type { AttachClient } from '../pty/session.js'
import { keepAlive, pingInterval } from './ws-heartbeat.js'
import { RunIdParams } from '../contract/runs.js'
import type { ApiInstance } from './type-provider.js'

// A client that cannot keep up is let go rather than buffered without bound.
const MAX_BUFFERED = 16 * 1024 * 1024

type InMessage = { type: 'input', data: string } | { type: 'resize', cols: number, rows: number }

/** A client message, or null for anything else (ignored: a newer client may send more kinds). */
export function parseInMessage (text: string): InMessage | null {
  let m: unknown
  try {
    m = JSON.parse(text)
  } catch {
    return null
  }
  if (typeof m !== 'object' || m === null) return null
  const o = m as Record<string, unknown>
  if (o.type === 'input' && typeof o.data === 'string') return { type: 'input', data: o.data }
  const dim = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 10000
  if (o.type === 'resize' && dim(o.cols) && dim(o.rows)) return { type: 'resize', cols: o.cols, rows: o.rows }
  return null
}

function clientOf (socket: WebSocket): AttachClient {
  return {
    output (data) {
      if (socket.readyState !== socket.OPEN) return
      if (socket.bufferedAmount > MAX_BUFFERED) {
        socket.close(1008, 'client too slow')
        return
      }
      socket.send(data, { binary: true })
    },
    exit (msg) {
      if (socket.readyState !== socket.OPEN) return
      socket.send(JSON.stringify(msg), () => socket.close(1000, 'run ended'))
    }
  }
}

export default async function attachApi (api: ApiInstance): Promise<void> {
  const { deps } = api
  const host = (): NonNullable<typeof deps.pty> => {
    if (deps.pty === undefined) throw nfsError('NFS_ERR_TARGET_UNAVAILABLE', ['launch', 'launched runs are not enabled'])
    return deps.pty
  }

  api.route({
    method: 'GET',
    url: '/runs/:id/attach',
    handler: upgradeRequired,
    schema: { params: RunIdParams },
    // Refusals are plain HTTP answers with a code, before any upgrade.
    preValidation: async (request) => {
      host().checkAttach(request.caller, request.params.id)
    },
    wsHandler: (socket, request) => {
      const runId = request.params.id
      keepAlive(socket, pingInterval(deps.config.limits.idleTimeoutSeconds))
      let attachment: Attachment | null = null
      let closed = false
      const early: InMessage[] = []
      const apply = (a: Attachment, m: InMessage): void => {
        if (m.type === 'input') a.input(m.data)
        else a.resize(m.cols, m.rows)
      }
      socket.on('message', (raw, isBinary) => {
        if (isBinary) return
        const m = parseInMessage(raw.toString())
        if (m === null) return
        if (attachment === null) early.push(m)
        else apply(attachment, m)
      })
      socket.on('close', () => {
        closed = true
        attachment?.detach()
      })
      host().attach(request.caller, runId, clientOf(socket)).then((a) => {
        attachment = a
        if (closed) return a.detach()
        for (const m of early.splice(0)) apply(a, m)
      }, (err: unknown) => {
        request.log.warn({ runId, err }, 'attach failed')
        socket.close(1011, 'attach failed')
      })
    }
  })
}
