#!/usr/bin/env node
// Reads what tap printed (one file per tap invocation) and prints CI's closing line, `N passed, N failed`
// (`, N skipped` when any were skipped), from tap's own counts: the `# { total: 7, pass: 5, fail: 1 }` comment
// that tap writes at the end of its TAP output when stdout is not a terminal.
// Exit 1 when a test failed or when an output has no such line (tap or the build crashed: that counts as one
// failure, so the closing line never reads as green when a run died), 0 otherwise.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

// eslint-disable-next-line no-control-regex -- matching the ESC of colour codes is the point
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g

/**
 * tap's closing counts in one output, or null when there are none (the last one wins: a rerun appends).
 * Only column-0 comments count: a subtest's comments are indented, so a test printing its own `# {` is skipped.
 * util.inspect breaks a long object over lines, and tap then prefixes each line with `# `: joined back here.
 * @param {string} text
 * @returns {{ total: number, pass: number, fail: number, skip: number, todo: number } | null}
 */
export function parseTapSummary (text) {
  const lines = text.replace(ANSI, '').split(/\r?\n/)
  let found = null
  for (let i = 0; i < lines.length; i++) {
    if (!/^# \{/.test(lines[i])) continue
    let body = lines[i]
    for (let j = i + 1; !body.includes('}') && j < lines.length && lines[j].startsWith('#'); j++) body += ' ' + lines[j].slice(1)
    if (!body.includes('}')) continue
    const counts = Object.fromEntries([...body.matchAll(/(\w+):\s*(\d+)/g)].map(m => [m[1], Number(m[2])]))
    if (counts.total === undefined) continue
    found = { total: counts.total, pass: counts.pass ?? 0, fail: counts.fail ?? 0, skip: counts.skip ?? 0, todo: counts.todo ?? 0 }
  }
  return found
}

/**
 * Sums several tap outputs; an output without counts is listed in `missing` and counted as one failure.
 * @param {Array<{ name: string, text: string }>} outputs
 */
export function summarize (outputs) {
  const sum = { passed: 0, failed: 0, skipped: 0, missing: /** @type {string[]} */ ([]) }
  for (const { name, text } of outputs) {
    const c = parseTapSummary(text)
    if (c === null) {
      sum.missing.push(name)
      sum.failed += 1
      continue
    }
    sum.passed += c.pass
    sum.failed += c.fail
    sum.skipped += c.skip
  }
  return sum
}

/**
 * @param {{ passed: number, failed: number, skipped: number }} sum
 * @returns {string}
 */
export function closingLine (sum) {
  const line = `${sum.passed} passed, ${sum.failed} failed`
  return sum.skipped > 0 ? `${line}, ${sum.skipped} skipped` : line
}

function main (files) {
  if (files.length === 0) {
    process.stderr.write('usage: tap-summary.mjs TAP_OUTPUT_FILE...\n')
    return 2
  }
  const sum = summarize(files.map(name => {
    try {
      return { name, text: readFileSync(name, 'utf8') }
    } catch {
      return { name, text: '' }
    }
  }))
  for (const name of sum.missing) {
    process.stderr.write(`tap-summary: no tap counts in ${name} (the build or tap crashed?); counted as 1 failed\n`)
  }
  process.stdout.write(closingLine(sum) + '\n')
  return sum.failed > 0 ? 1 : 0
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2))
