#!/usr/bin/env node
// Every installed package must run on every Node our package.json `engines` admits: a dependency asking for more
// (cookie 2 wants Node >= 22 while we promised >= 20.19) breaks the promise on the Node the README names. Reads
// package-lock.json and prints each package whose engines.node does not admit every Node ours admits. Run by
// test/ci/engines.test.ts, so `npm test` and CI fail on one; test/e2e/package.test.ts checks the packed package's own
// fresh install the same way (no EBADENGINE). Fix a finding by holding the package back with a direct dependency on
// a release that asks for less (npm dedupes the transitive one onto it; `overrides` would not reach a global install
// of the package, nor would a shrinkwrap of a local tarball), or by changing our own range on purpose.
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import semver from 'semver'

/**
 * The Node versions that stand for `ours`: in each major line it admits (up to 40), the first and a very late
 * version. semver.subset() alone is too strict for this: it calls `>=22.12` no subset of `^22.12 || >=23`.
 * @param {string} ours
 * @returns {string[]}
 */
export function sampleVersions (ours) {
  const out = []
  const first = semver.minVersion(ours)
  if (first === null) throw new Error(`engines.node ${ours} admits no version`)
  for (let major = first.major; major <= 40; major++) {
    for (const set of new semver.Range(ours).set) {
      const inMajor = `${set.map(c => c.value).join(' ')} >=${major}.0.0 <${major + 1}.0.0-0`.trim()
      const low = semver.minVersion(inMajor)
      if (low !== null && semver.satisfies(low, ours)) out.push(low.version)
    }
    if (semver.satisfies(`${major}.99999.0`, ours)) out.push(`${major}.99999.0`)
  }
  return [...new Set(out)]
}

/**
 * The lockfile entries whose engines.node does not admit every Node in `ours` (checked at sampleVersions(ours)).
 * @param {string} ours our engines.node range
 * @param {Record<string, { version?: string, engines?: unknown, dev?: boolean, optional?: boolean }>} packages the lockfile's `packages`
 * @returns {Array<{ path: string, version: string, node: string, fails: string[] }>}
 */
export function enginesMismatches (ours, packages) {
  const samples = sampleVersions(ours)
  const out = []
  for (const [path, entry] of Object.entries(packages)) {
    if (path === '') continue
    // A few old packages list engines as an array of strings; only the object form speaks of node.
    const node = entry.engines !== null && typeof entry.engines === 'object' && !Array.isArray(entry.engines) ? entry.engines.node : undefined
    if (typeof node !== 'string') continue
    const range = semver.validRange(node)
    const fails = range === null ? samples : samples.filter(v => !semver.satisfies(v, range))
    if (fails.length > 0) out.push({ path, version: entry.version ?? '?', node, fails })
  }
  return out
}

export function readLock (root) {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'))
  return { ours: pkg.engines.node, lockRoot: lock.packages[''], packages: lock.packages }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { ours, packages } = readLock(join(dirname(fileURLToPath(import.meta.url)), '..', '..'))
  const bad = enginesMismatches(ours, packages)
  for (const b of bad) console.log(`${b.path}@${b.version} needs node ${b.node}, we promise ${ours} (fails on ${b.fails.join(', ')})`)
  process.exit(bad.length === 0 ? 0 : 1)
}
