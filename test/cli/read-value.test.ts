import t from 'tap'
import { Readable } from 'node:stream'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encodeValue, promptInput, PROMPT_START, readValue, stripOneNewline } from '../../daemon/cli/read-value.js'

const sink = { write: () => true } as unknown as NodeJS.WritableStream

function pipedStdin (bytes: Buffer | string): NodeJS.ReadStream {
  // A non-TTY stdin, as when a value is piped in.
  return Readable.from([Buffer.from(bytes)]) as unknown as NodeJS.ReadStream
}

t.test('one trailing newline is dropped, no more', async t => {
  t.equal(stripOneNewline(Buffer.from('abc\n')).toString(), 'abc')
  t.equal(stripOneNewline(Buffer.from('abc\r\n')).toString(), 'abc')
  t.equal(stripOneNewline(Buffer.from('abc\n\n')).toString(), 'abc\n')
  t.equal(stripOneNewline(Buffer.from('a\nb')).toString(), 'a\nb')
  t.equal(stripOneNewline(Buffer.from('\n')).toString(), '')
  t.equal(stripOneNewline(Buffer.alloc(0)).length, 0)
})

t.test('encoding: strict UTF-8, or base64 of the bytes', async t => {
  t.equal(encodeValue(Buffer.from('héllo'), false), 'héllo')
  t.equal(encodeValue(Buffer.from([0xff, 0x00, 0x0a]), true), '/wAK')
  t.throws(() => encodeValue(Buffer.from([0xff, 0xfe]), false), { code: 'NFS_ERR_VALUE_ENCODING' })
  t.throws(() => encodeValue(Buffer.alloc(0), false), { code: 'NFS_ERR_VALUE_SIZE' })
  t.throws(() => encodeValue(Buffer.alloc(0), true), { code: 'NFS_ERR_VALUE_SIZE' })
})

t.test('piped stdin', async t => {
  t.equal(await readValue({ name: 'A', base64: false, stdin: pipedStdin('s3cr3t\n'), prompt: sink }), 's3cr3t')
  // Other newlines stay: the daemon refuses them and suggests --base64.
  t.equal(await readValue({ name: 'A', base64: false, stdin: pipedStdin('a\nb\n'), prompt: sink }), 'a\nb')
  t.equal(await readValue({ name: 'A', base64: true, stdin: pipedStdin('a\nb\n'), prompt: sink }), Buffer.from('a\nb').toString('base64'))
  await t.rejects(readValue({ name: 'A', base64: false, stdin: pipedStdin(''), prompt: sink }), { code: 'NFS_ERR_VALUE_SIZE' })
})

t.test('--value-file: text drops one newline; with --base64 the bytes are exact', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-cli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'v')
  writeFileSync(file, 'from-file\n', { mode: 0o600 })
  const stdin = pipedStdin('ignored')
  t.equal(await readValue({ name: 'A', valueFile: file, base64: false, stdin, prompt: sink }), 'from-file')
  t.equal(await readValue({ name: 'A', valueFile: file, base64: true, stdin, prompt: sink }), Buffer.from('from-file\n').toString('base64'))
  await t.rejects(readValue({ name: 'A', valueFile: join(dir, 'missing'), base64: false, stdin, prompt: sink }), { code: 'NFS_ERR_USAGE' })
})

t.test('the hidden prompt: editing keys, Enter, Ctrl-C, Ctrl-D, escape sequences', async t => {
  const feed = (...chunks: string[]): ReturnType<typeof promptInput> => chunks.reduce(promptInput, PROMPT_START)
  t.same(feed('abc', '\r'), { value: 'abc', escape: false, done: 'enter' })
  t.same(feed('abc\rzzz'), { value: 'abc', escape: false, done: 'enter' }, 'a paste stops at Enter')
  t.same(feed('abx\x7fc\n'), { value: 'abc', escape: false, done: 'enter' }, 'backspace')
  t.same(feed('wrong\x15ok\r'), { value: 'ok', escape: false, done: 'enter' }, 'Ctrl-U clears')
  t.same(feed('a\x1b[D', 'b\r'), { value: 'ab', escape: false, done: 'enter' }, 'arrow keys are dropped')
  t.same(feed('a\tb\r'), { value: 'ab', escape: false, done: 'enter' }, 'other control characters are dropped')
  t.same(feed('sec', '\x03'), { value: '', escape: false, done: 'abort' }, 'Ctrl-C aborts and forgets')
  t.equal(feed('\x04').done, 'abort', 'Ctrl-D on an empty line aborts')
  t.same(feed('ab\x04'), { value: 'ab', escape: false, done: 'enter' }, 'Ctrl-D after text ends the value')
  t.same(feed('né\x7f'), { value: 'n', escape: false, done: null }, 'backspace removes a whole character')
})

t.test('--base64: 48 KiB is the most that fits 64 KiB once encoded; one byte more is NFS_ERR_VALUE_SIZE before sending', async t => {
  const { encodeValue, MAX_BASE64_INPUT_BYTES } = await import('../../daemon/cli/read-value.js')
  t.equal(encodeValue(Buffer.alloc(MAX_BASE64_INPUT_BYTES, 1), true).length, 65_536)
  t.throws(() => encodeValue(Buffer.alloc(MAX_BASE64_INPUT_BYTES + 1, 1), true), { code: 'NFS_ERR_VALUE_SIZE' })
})
