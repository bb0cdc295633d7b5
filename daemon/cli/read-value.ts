// Where a secret value comes from: a file (`--value-file`), piped stdin, or a no-echo prompt on the terminal.
// Never argv: arguments show in `ps`, /proc/PID/cmdline and shell history. The value stays in Buffers and strings
// of this module and goes out only as the request body; no error here ever includes it.
import { readFile } from 'node:fs/promises'
import { nfsError } from '../errors.js'
import { CliError } from './client.js'

export const VALUE_IN_ARGV = 'a secret value is never taken from the command line (it would show in ps and shell history): ' +
  'pipe it on stdin, type it at the prompt, or use --value-file F'

export interface ValueSource {
  name: string
  valueFile?: string
  base64: boolean
  stdin: NodeJS.ReadStream
  /** where the prompt goes (stderr, so stdout stays clean for --json) */
  prompt: NodeJS.WritableStream
}

function coded (code: Parameters<typeof nfsError>[0], args: unknown[] = []): CliError {
  const e = nfsError(code, args)
  return new CliError(e.code, e.message)
}

/** Drop one trailing "\n" (or "\r\n"): what `echo` and most editors add. Other newlines stay, and the daemon refuses them. */
export function stripOneNewline (bytes: Buffer): Buffer {
  if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0a) {
    const cut = bytes.length > 1 && bytes[bytes.length - 2] === 0x0d ? 2 : 1
    return bytes.subarray(0, bytes.length - cut)
  }
  return bytes
}

/** The most bytes that --base64 can encode within the 64 KiB value limit (65536 / 4 * 3). */
export const MAX_BASE64_INPUT_BYTES = 49_152

/** The string sent to the daemon: base64 of the bytes with --base64, else the bytes as strict UTF-8. */
export function encodeValue (bytes: Buffer, base64: boolean): string {
  if (bytes.length === 0) throw coded('NFS_ERR_VALUE_SIZE', [0])
  // base64 grows 3 bytes to 4: 48 KiB is what fits the 64 KiB limit once encoded. Refused here, before anything is
  // sent, with the size the user has in hand rather than the encoded one.
  if (base64) {
    if (bytes.length > MAX_BASE64_INPUT_BYTES) throw coded('NFS_ERR_VALUE_SIZE', [bytes.length])
    return bytes.toString('base64')
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    throw coded('NFS_ERR_VALUE_ENCODING')
  }
}

export interface PromptState {
  value: string
  /** inside an escape sequence (arrow keys and the like), which is dropped */
  escape: boolean
  done: 'enter' | 'abort' | null
}

export const PROMPT_START: PromptState = { value: '', escape: false, done: null }

/**
 * One chunk of raw terminal input applied to the prompt's state, pure. Enter ends; Ctrl-C aborts; Ctrl-D ends (or
 * aborts on an empty line); Backspace and Ctrl-U edit; escape sequences and other control characters are ignored.
 */
export function promptInput (state: PromptState, chunk: string): PromptState {
  let { value, escape } = state
  for (const ch of chunk) {
    if (escape) {
      // CSI sequences end with a letter or '~'; a lone ESC followed by one character is a two-byte sequence.
      if (/[A-Za-z~]/.test(ch)) escape = false
      continue
    }
    if (ch === '\r' || ch === '\n') return { value, escape: false, done: 'enter' }
    if (ch === '\x03') return { value: '', escape: false, done: 'abort' }
    if (ch === '\x04') return { value, escape: false, done: value === '' ? 'abort' : 'enter' }
    if (ch === '\x7f' || ch === '\b') { value = [...value].slice(0, -1).join(''); continue }
    if (ch === '\x15') { value = ''; continue }
    if (ch === '\x1b') { escape = true; continue }
    if (ch < ' ') continue
    value += ch
  }
  return { value, escape, done: null }
}

/** Read one line from the terminal without echo. */
export function promptHidden (stdin: NodeJS.ReadStream, prompt: NodeJS.WritableStream, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let state = PROMPT_START
    const wasRaw = stdin.isRaw
    const finish = (): void => {
      stdin.off('data', onData)
      stdin.off('end', onEnd)
      stdin.setRawMode(wasRaw)
      stdin.pause()
      prompt.write('\n')
    }
    const onData = (chunk: Buffer | string): void => {
      state = promptInput(state, chunk.toString())
      if (state.done === null) return
      const { value, done } = state
      state = PROMPT_START
      finish()
      if (done === 'abort') reject(coded('NFS_ERR_USAGE', ['cancelled: no value was entered']))
      else resolve(value)
    }
    const onEnd = (): void => { finish(); reject(coded('NFS_ERR_USAGE', ['cancelled: the terminal closed'])) }
    prompt.write(text)
    stdin.setRawMode(true)
    stdin.on('data', onData)
    stdin.once('end', onEnd)
    stdin.resume()
  })
}

async function readAll (stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
  return Buffer.concat(chunks)
}

/**
 * The value to send. A file read with --base64 is taken byte for byte (it may be binary); otherwise one trailing
 * newline is dropped.
 */
export async function readValue (source: ValueSource): Promise<string> {
  let bytes: Buffer
  if (source.valueFile !== undefined) {
    try {
      bytes = await readFile(source.valueFile)
    } catch (err) {
      throw coded('NFS_ERR_USAGE', [`cannot read the value file ${source.valueFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`])
    }
    if (!source.base64) bytes = stripOneNewline(bytes)
  } else if (source.stdin.isTTY === true) {
    const line = await promptHidden(source.stdin, source.prompt, `Value for ${source.name} (input hidden, Enter to finish): `)
    bytes = Buffer.from(line, 'utf8')
  } else {
    bytes = stripOneNewline(await readAll(source.stdin))
  }
  return encodeValue(bytes, source.base64)
}
