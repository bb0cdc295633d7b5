// One runner for every child the daemon starts (daemon/children/run-child.ts: deadline, own process group, fds 0-2,
// 'error' handled first): no other file of the daemon or its adapters may import node:child_process. The CLI
// (daemon/cli/) is a client: the commands it starts are the user's own, in the user's session.
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { ROOT } from '../helpers/daemon.js'

function sources (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap(e => {
    const p = join(dir, e.name)
    if (e.isDirectory()) return sources(p)
    return e.name.endsWith('.ts') ? [p] : []
  })
}

t.test('only run-child.ts starts processes; node-pty is imported in one place', async t => {
  const files = ['daemon', 'adapters'].flatMap(d => sources(join(ROOT, d))).map(p => relative(ROOT, p)).filter(p => !p.startsWith('daemon/cli/'))
  t.ok(files.length > 50, 'the tree was read')
  const importsOf = (re: RegExp): string[] => files.filter(p => re.test(readFileSync(join(ROOT, p), 'utf8'))).sort()
  t.same(importsOf(/from ['"](node:)?child_process['"]|require\(['"](node:)?child_process['"]\)/), ['daemon/children/run-child.ts'])
  t.same(importsOf(/from ['"](@lydell\/)?node-pty['"]/), ['daemon/pty/node-pty.ts'])
})
