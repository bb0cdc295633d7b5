// A small tokenizer for the Groovy that Nextflow scripts and configs are written in: enough to tell code from
// comments and strings, so that a secret name in a comment or a message is not taken for a reference. Pure.
// Slashy strings (/.../) are not recognised: outside of regexes they are rare in pipelines, and a regex holds no
// `secret` directive; a division is read as an operator, which is what matters here.

export type Token =
  | { kind: 'ident', text: string }
  | { kind: 'string', text: string, interpolated: boolean }
  | { kind: 'punct', text: string }

const IDENT_START = /[A-Za-z_$]/
const IDENT_PART = /[A-Za-z0-9_$]/

/** The code inside `${...}` and after a bare `$` of a double-quoted string, to be scanned as code too. */
export function interpolations (text: string): string[] {
  const out: string[] = []
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '\\') { i++; continue }
    if (text[i] !== '$') continue
    if (text[i + 1] === '{') {
      let depth = 1
      let j = i + 2
      for (; j < text.length && depth > 0; j++) {
        if (text[j] === '{') depth++
        else if (text[j] === '}') depth--
      }
      out.push(text.slice(i + 2, j - 1))
      i = j - 1
    } else {
      const m = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*/.exec(text.slice(i + 1))
      if (m !== null) {
        out.push(m[0])
        i += m[0].length
      }
    }
  }
  return out
}

export function tokenize (src: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  const n = src.length
  while (i < n) {
    const c = src[i]!
    if (c === '/' && src[i + 1] === '/') {
      while (i < n && src[i] !== '\n') i++
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2)
      i = end === -1 ? n : end + 2
    } else if (c === '#' && i === 0 && src[1] === '!') {
      while (i < n && src[i] !== '\n') i++
    } else if (c === '"' || c === '\'') {
      const triple = src.startsWith(c.repeat(3), i)
      const quote = triple ? c.repeat(3) : c
      let j = i + quote.length
      let text = ''
      while (j < n && !src.startsWith(quote, j)) {
        if (src[j] === '\\' && j + 1 < n) {
          text += src[j]! + src[j + 1]!
          j += 2
          continue
        }
        if (!triple && src[j] === '\n') break
        text += src[j]
        j++
      }
      tokens.push({ kind: 'string', text, interpolated: c === '"' })
      i = Math.min(n, j + quote.length)
    } else if (IDENT_START.test(c)) {
      let j = i + 1
      while (j < n && IDENT_PART.test(src[j]!)) j++
      tokens.push({ kind: 'ident', text: src.slice(i, j) })
      i = j
    } else if (/\s/.test(c)) {
      i++
    } else {
      tokens.push({ kind: 'punct', text: c })
      i++
    }
  }
  return tokens
}
