#!/usr/bin/env node
// The hash of what the native addon is built from: binding.gyp and native/*.c and *.h, in name order. binding.gyp
// compiles it into every build (native/source_hash.c), scripts/prebuild.mjs records it beside the prebuilds, and a
// test compares the two, so prebuilds that lag behind the C source fail CI. Prints the hex digest; also a module.
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/** The files that make the addon, relative to the package root, in a fixed order. */
export function nativeSources (dir = root) {
  const native = readdirSync(join(dir, 'native')).filter(f => /\.[ch]$/.test(f)).sort().map(f => `native/${f}`)
  return ['binding.gyp', ...native]
}

export function nativeSourceHash (dir = root) {
  const h = createHash('sha256')
  for (const rel of nativeSources(dir)) {
    const body = readFileSync(join(dir, rel))
    h.update(`${rel}\0${body.length}\0`)
    h.update(body)
  }
  return h.digest('hex')
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(nativeSourceHash() + '\n')
}
