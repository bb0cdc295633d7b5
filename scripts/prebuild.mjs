#!/usr/bin/env node
// `npm run prebuilds`: rebuild the committed prebuilt addons (prebuilds/linux-x64, prebuilds/linux-arm64) from
// native/*.c and binding.gyp, so a clone or the package installs with no compiler and no Node headers. Run it after
// any change to the C source and commit prebuilds/ with it; test/ci/prebuilds.test.ts fails until you do.
//
// N-API (--napi) makes one binary per platform serve every Node version. The other architecture is cross-compiled
// (Debian: `apt-get install gcc-aarch64-linux-gnu`, or gcc-x86-64-linux-gnu on an arm64 host). The build happens in
// a temporary copy of the sources, so the checkout's own build/ (a developer's compile) is left alone. Node's headers
// come from the local Node when it has them (Debian's and NodeSource's do), else node-gyp downloads them.
import { execFileSync, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { arch as hostArch, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { nativeSourceHash, nativeSources } from '../native/source-hash.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const TARGETS = [
  { arch: 'x64', triple: 'x86_64-linux-gnu', apt: 'gcc-x86-64-linux-gnu' },
  { arch: 'arm64', triple: 'aarch64-linux-gnu', apt: 'gcc-aarch64-linux-gnu' }
]

function has (cmd) {
  return spawnSync('sh', ['-c', `command -v "${cmd}"`], { stdio: 'ignore' }).status === 0
}

function toolchain (target) {
  if (target.arch === hostArch()) return { env: {}, strip: 'strip' }
  const cc = `${target.triple}-gcc`
  if (!has(cc)) {
    console.error(`prebuild: ${cc} is missing; install it (Debian: apt-get install ${target.apt}) and run again`)
    process.exit(1)
  }
  return { env: { CC: cc, CXX: cc, LINK: cc, AR: `${target.triple}-ar` }, strip: `${target.triple}-strip` }
}

const prebuildify = join(root, 'node_modules', 'prebuildify', 'bin.js')
if (!existsSync(prebuildify)) {
  console.error('prebuild: prebuildify is missing; run npm install (it is a devDependency)')
  process.exit(1)
}
const nodedir = join(dirname(process.execPath), '..')
const localHeaders = existsSync(join(nodedir, 'include', 'node', 'node_api.h'))
const hash = nativeSourceHash(root)

for (const target of TARGETS) {
  const work = mkdtempSync(join(tmpdir(), 'nfs-prebuild-'))
  try {
    for (const rel of nativeSources(root)) cpSync(join(root, rel), join(work, rel))
    cpSync(join(root, 'native', 'source-hash.mjs'), join(work, 'native', 'source-hash.mjs'))
    writeFileSync(join(work, 'package.json'), JSON.stringify({ name: 'nf-secretsd', private: true }))
    const tc = toolchain(target)
    const env = { ...process.env, ...tc.env, ...(localHeaders ? { npm_config_nodedir: nodedir } : {}) }
    execFileSync(process.execPath, [prebuildify, '--napi', '--strip', '--strip-bin', tc.strip, '--tag-libc',
      '--arch', target.arch, '--platform', 'linux'], { cwd: work, env, stdio: 'inherit' })
    const built = join(work, 'prebuilds', `linux-${target.arch}`)
    const dest = join(root, 'prebuilds', `linux-${target.arch}`)
    rmSync(dest, { recursive: true, force: true })
    cpSync(built, dest, { recursive: true })
    console.log(`prebuild: ${dest}: ${readdirSync(dest).join(', ')} (sources ${hash.slice(0, 12)})`)
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}
