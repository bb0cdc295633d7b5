// GET /runs/:id/attach: a WebSocket onto a launched run's terminal. Out: binary frames of terminal output (the
// replay first, then live), and a final text frame `{type:'exit', state, exitCode, signal}` before the close.
// In: text frames `{type:'input', data}` (keystrokes) and `{type:'resize', cols, rows}`. Closing detaches; the run
// goes on. Only the run's owner may attach; anyone else, and any unknown id, gets NFS_ERR_RUN_NOT_FOUND before
// the upgrade.
import type { WebSocket } from 'ws'
import { upgradeRequired } from './client-errors.js'
import type { Attachment, PtyHost } from '../pty/host.js'
import type { AttachClient } from '../pty/session.js'
import { keepAlive, pingInterval } from './ws-heartbeat.js'
import { RunIdParams } from '../contract/runs.js'
import type { ApiPlugin } from './type-provider.js'

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

export interface AttachApiOptions {
  pty: Pick<PtyHost, 'attach' | 'checkAttach'>
  /** limits.idleTimeoutSeconds: the pings keep an attached terminal's connection from looking idle */
  idleTimeoutSeconds: number
}

// Registered only where the daemon launches runs: without a PTY host there is no attach route (404).
const attachApi: ApiPlugin<AttachApiOptions> = async (api, { pty, idleTimeoutSeconds }) => {
  api.route({
    method: 'GET',
    url: '/runs/:id/attach',
    handler: upgradeRequired,
    schema: { params: RunIdParams },
    // Refusals are plain HTTP answers with a code, before any upgrade.
    preValidation: async (request) => {
      pty.checkAttach(request.caller, request.params.id)
    },
    wsHandler: (socket, request) => {
      const runId = request.params.id
      keepAlive(socket, pingInterval(idleTimeoutSeconds))
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
      pty.attach(request.caller, runId, clientOf(socket)).then((a) => {
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

export default attachApi
