// `launch` and `attach`: the daemon hosts the command under a pseudo-terminal, as the caller, in the caller's cwd,
// so it survives the client (and the SSH session). `attach` puts this terminal in raw mode and bridges it to the
// run's: keystrokes and window size go in, output comes out; Ctrl-] detaches and leaves the run going.
import type { IncomingMessage } from 'node:http'
import { constants } from 'node:os'
import type WebSocket from 'ws'
import { EXIT } from '../errors.js'
import type { Command, CommandContext } from './args.js'
import { checkedConnection, CliError, refusalFrom, unreachable, wsUrl } from './client.js'
import { safeText } from './output.js'
import { leastPrivilege, PROVISION_OPTIONS, scanRequestOf } from './least-privilege.js'
import type { CreatedRun } from '../contract/runs.js'

interface ExitMessage { type: 'exit', state: string, exitCode: number | null, signal: string | null }

/** The detach key, Ctrl-] (as telnet and docker use). */
export const DETACH_BYTE = 0x1d

function list (v: unknown): string[] | undefined {
  if (typeof v !== 'string' || v === '') return undefined
  return v.split(',').map(s => s.trim()).filter(s => s !== '')
}

/** The status to exit with for a run's end: the command's own, 128+N for signal N. Pure. */
export function exitStatusOf (msg: Pick<ExitMessage, 'exitCode' | 'signal'>): number {
  if (msg.exitCode !== null) return msg.exitCode
  if (msg.signal !== null) {
    const n = (constants.signals as Record<string, number>)[msg.signal]
    if (n !== undefined) return 128 + n
  }
  return EXIT.failure
}

/** Split keyboard input at the detach key: what to send first, and whether to detach after it. Pure. */
export function splitAtDetach (chunk: Buffer): { send: Buffer, detach: boolean } {
  const i = chunk.indexOf(DETACH_BYTE)
  return i < 0 ? { send: chunk, detach: false } : { send: chunk.subarray(0, i), detach: true }
}

/** The caller's environment as the daemon gets it: defined values only. */
export function launchEnv (env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env)) if (v !== undefined && !k.includes('=')) out[k] = v
  return out
}

function termSize (ctx: CommandContext): { cols: number, rows: number } | null {
  const out = ctx.io.stdout as NodeJS.WriteStream
  return out.isTTY === true && out.columns > 0 && out.rows > 0 ? { cols: out.columns, rows: out.rows } : null
}

/** Bridge this terminal to the run's until it ends (its status), the user detaches (0) or the daemon goes (69). */
export async function attach (ctx: CommandContext, runId: string): Promise<number> {
  // Loaded here, not at the top: every other CLI call would pay for it.
  const { default: WebSocketClass } = await import('ws')
  const checked = await checkedConnection(ctx.socketPath)
  return await new Promise((resolve, reject) => {
    const { stdin, stdout, stderr } = ctx.io
    const ws = new WebSocketClass(wsUrl(ctx.socketPath, `/runs/${encodeURIComponent(runId)}/attach`), { handshakeTimeout: 10_000, createConnection: checked.createConnection })
    const raw = stdin.isTTY === true && typeof stdin.setRawMode === 'function'
    let ended: ExitMessage | null = null
    let detached = false
    let settled = false

    const send = (msg: unknown): void => { if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(msg)) }
    const resize = (): void => {
      const size = termSize(ctx)
      if (size !== null) send({ type: 'resize', ...size })
    }
    const onInput = (chunk: Buffer | string): void => {
      const { send: data, detach } = splitAtDetach(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk))
      if (data.length > 0) send({ type: 'input', data: data.toString('utf8') })
      if (detach) {
        detached = true
        ws.close(1000, 'detached')
      }
    }
    const leave = (): void => { detached = true; ws.close(1000, 'detached') }
    const cleanup = (): void => {
      stdin.off('data', onInput)
      stdin.pause()
      if (raw) stdin.setRawMode(false)
      ;(stdout as NodeJS.WriteStream).off?.('resize', resize)
      process.off('SIGWINCH', resize)
      process.off('SIGTERM', leave)
      process.off('SIGHUP', leave)
    }
    const settle = (fn: () => void): void => {
      if (settled) return
      settled = true
      cleanup()
      fn()
    }

    ws.on('open', () => {
      if (raw) stdin.setRawMode(true)
      stdin.on('data', onInput)
      stdin.resume()
      process.on('SIGWINCH', resize)
      process.on('SIGTERM', leave)
      process.on('SIGHUP', leave)
      resize()
    })
    ws.on('message', (data: WebSocket.RawData, isBinary: boolean) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer)
      if (isBinary) {
        stdout.write(buf)
        return
      }
      try {
        const msg = JSON.parse(buf.toString('utf8')) as { type?: unknown }
        if (msg.type === 'exit') ended = msg as ExitMessage
      } catch {
        // not ours: ignore
      }
    })
    let refused = false
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      // The daemon's coded refusal (not found, ...) wins over the error ws raises once the attempt is dropped.
      refused = true
      void refusalFrom(res).then(err => settle(() => reject(err)))
    })
    ws.on('error', (err) => { if (!refused) settle(() => reject(checked.refusal() ?? unreachable(ctx.socketPath, err))) })
    ws.on('close', () => settle(() => {
      const id = safeText(runId)
      if (ended !== null) {
        const status = exitStatusOf(ended)
        stderr.write(`\r\nnf-secrets: run ${id} ended: ${safeText(ended.state)} (status ${status})\n`)
        resolve(status)
      } else if (detached) {
        stderr.write(`\r\nnf-secrets: detached from run ${id}; it goes on (nf-secrets attach ${id})\n`)
        resolve(EXIT.ok)
      } else {
        stderr.write(`\r\nnf-secrets: the daemon closed the connection; run ${id} goes on (nf-secrets attach ${id})\n`)
        resolve(EXIT.unavailable)
      }
    }))
  })
}

async function launchCommand (ctx: CommandContext): Promise<number> {
  if (ctx.args.length === 0) throw new CliError('NFS_ERR_USAGE', 'launch needs a command: nf-secrets launch [--target T] [--only A,B] [--detach] [--] CMD ...')
  const targets = list(ctx.options.target)
  const only = list(ctx.options.only)
  const size = termSize(ctx)
  const body = {
    mode: 'launch',
    launchDir: ctx.io.cwd,
    command: ctx.args,
    env: launchEnv(ctx.io.env),
    ...(size !== null ? size : {}),
    ...(ctx.global.workspace !== undefined ? { workspace: ctx.global.workspace } : {}),
    ...(targets !== undefined ? { targets } : {}),
    ...(only !== undefined ? { only } : {}),
    ...leastPrivilege(ctx, scanRequestOf(ctx.args, ctx.io.cwd, ctx.io.env))
  }
  const created = await ctx.client().request<CreatedRun>('POST', '/runs', { body })
  const detach = ctx.options.detach === true
  if (ctx.global.json) ctx.io.stdout.write(`${JSON.stringify(created)}\n`)
  else if (detach) ctx.io.stdout.write(`${created.runId}\n`)
  ctx.io.stderr.write(`nf-secrets: launched run ${created.runId} with ${created.secrets.length} secret(s) in ${created.targets.join(',')}; ` +
    (detach ? `attach with: nf-secrets attach ${created.runId}\n` : 'Ctrl-] detaches\n'))
  if (detach) return EXIT.ok
  return await attach(ctx, created.runId)
}

export const launchCommands: Command[] = [
  {
    path: ['launch'],
    usage: '[--target hpc,aws] [--only A,B | --all] [--allow-missing] [-w W] [--detach] [--] CMD ...',
    summary: 'the daemon runs CMD under a terminal as you, in this dir, with the run\'s secrets; attaches unless --detach',
    options: { ...PROVISION_OPTIONS, detach: { type: 'boolean', description: 'print the run id and return; attach later with nf-secrets attach RUN' } },
    positionals: [1, Infinity],
    passthrough: true,
    run: launchCommand
  },
  {
    path: ['attach'],
    usage: 'RUN',
    summary: 'replay a launched run\'s recent output, then live; keys and window size are forwarded; Ctrl-] detaches',
    positionals: [1, 1],
    async run (ctx) {
      return await attach(ctx, ctx.args[0]!)
    }
  }
]
