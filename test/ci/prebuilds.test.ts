// The committed prebuilds (prebuilds/linux-x64, prebuilds/linux-arm64) are what a clone and the package install with
// no compiler: each must be built from the C source as it is now. Every build carries the hash of its sources
// (native/source_hash.c), read here straight out of the binary, so the arm64 one is checked on an x64 host too.
// A failure here means: run `npm run prebuilds` and commit prebuilds/ with the C change.
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { arch } from 'node:os'
import { join } from 'node:path'
import { nativeSourceHash } from '../../native/source-hash.mjs'
import { ROOT } from '../helpers/daemon.js'

const MARKER = 'nfs-native-source-sha256:'
const FIX = 'the prebuilds are stale against native/*.c or binding.gyp: run `npm run prebuilds` and commit prebuilds/'

/** The source hash a binary was built from, or null when it carries none. */
export function builtFrom (binary: Buffer): string | null {
  const at = binary.indexOf(MARKER)
  if (at < 0) return null
  return binary.subarray(at + MARKER.length, at + MARKER.length + 64).toString('latin1')
}

t.test('builtFrom reads the marker out of a binary', async (t) => {
  const hex = 'ab'.repeat(32)
  t.equal(builtFrom(Buffer.concat([Buffer.from([0, 1, 2]), Buffer.from(`${MARKER}${hex}\0`), Buffer.from([7])])), hex)
  t.equal(builtFrom(Buffer.from('no marker here')), null)
})

const sources = nativeSourceHash(ROOT)
for (const platform of ['linux-x64', 'linux-arm64']) {
  t.test(`prebuilds/${platform} is built from the current C source`, async (t) => {
    const dir = join(ROOT, 'prebuilds', platform)
    const files = readdirSync(dir).filter(f => f.endsWith('.node'))
    t.same(files, ['nf-secretsd.glibc.node'], 'one N-API build, tagged glibc (musl falls back to a compile)')
    for (const f of files) t.equal(builtFrom(readFileSync(join(dir, f))), sources, `${f}: ${FIX}`)
  })
}

t.test('the prebuild for this host loads and works', { skip: ['x64', 'arm64'].includes(arch()) ? false : `no prebuild for ${arch()}` }, async (t) => {
  const addon = createRequire(import.meta.url)(join(ROOT, 'prebuilds', `linux-${arch()}`, 'nf-secretsd.glibc.node')) as { getpwuid: (uid: number) => { name: string } | null }
  t.equal(addon.getpwuid(0)?.name, 'root')
})
