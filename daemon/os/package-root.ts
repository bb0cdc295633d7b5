// The package's root, found from this module's own location, so the same code works from source (daemon/*.ts under
// tap) and compiled (dist/daemon/*.js) and from a global npm install.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

let cached: string | undefined

export function packageRoot (): string {
  if (cached !== undefined) return cached
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const candidate = join(dir, 'package.json')
    if (existsSync(candidate)) {
      const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string }
      if (pkg.name === 'nf-secretsd') return (cached = dir)
    }
    const parent = dirname(dir)
    if (parent === dir) throw new Error('nf-secretsd: cannot find the package root')
    dir = parent
  }
}

export function packageVersion (): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }
  return pkg.version
}
