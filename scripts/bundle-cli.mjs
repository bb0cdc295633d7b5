#!/usr/bin/env node
// The second half of `npm run build`: bundles the compiled CLI (dist/daemon/cli/main.js, tsc's output) into one
// CommonJS file, dist/daemon/cli/nf-secrets.cjs, the package's `nf-secrets` bin. Why (issue 17: a call within 2 x a
// bare `node -e 0`): as ESM the CLI paid for Node's ESM loader (resolving and linking some twenty files, the CJS
// lexer for @fastify/error), and for every `import ... from 'node:fs'` Node builds the builtin's ESM namespace by
// reading every export, which loads fs/promises, fs streams and readline that the CLI never uses. One CommonJS file
// `require`s only what runs. The daemon is not bundled: its start-up is not per call.
//
// The input is tsc's JavaScript, not the TypeScript, so the bundle runs exactly the code that tsc emitted and the
// tests import. Kept outside: `ws` (events and attach only; loaded when used) and node-gyp-build (native.ts resolves
// the addon from the package root at run time). The command modules stay lazy: esbuild turns each dynamic import
// into a call that evaluates that module's part of the file on first use.
import { chmodSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
export const CLI_BUNDLE = join(root, 'dist', 'daemon', 'cli', 'nf-secrets.cjs')

await build({
  entryPoints: [join(root, 'dist', 'daemon', 'cli', 'main.js')],
  outfile: CLI_BUNDLE,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['ws', 'node-gyp-build'],
  // import('node:http') and import('ws') as require(): a dynamic import() would start the ESM loader after all.
  supported: { 'dynamic-import': false },
  // The code finds the package root and its own path from import.meta.url (os/package-root.ts, main.ts's isMain,
  // native.ts's createRequire); in CommonJS that is this file's own URL.
  define: { 'import.meta.url': '__nfsModuleUrl' },
  // 'use strict' first: esbuild's own comes after the banner, where it is no longer a directive (ESM is strict).
  banner: { js: '\'use strict\'\nconst __nfsModuleUrl = require(\'node:url\').pathToFileURL(__filename).href' },
  // tsc's source maps are not chained through: a stack trace names the bundle's lines, which is all a user sees.
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning'
})
chmodSync(CLI_BUNDLE, 0o755)
