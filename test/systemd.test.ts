import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { one, parseUnit } from './helpers/unit-file.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const unitDir = join(root, 'systemd')
const systemService = join(unitDir, 'nf-secretsd.service')
const systemSocket = join(unitDir, 'nf-secretsd.socket')
const userService = join(unitDir, 'user', 'nf-secretsd.service')
const MAX_EXPOSURE = 3.0

// What the daemon needs as root (see the comments in the unit): the bounding set must be exactly this,
// so that neither a missing capability nor an extra one slips in while someone tunes the exposure.
const NEEDED_CAPS = ['CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_KILL', 'CAP_SETGID', 'CAP_SETUID']

function analyze (args: string[], env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync('systemd-analyze', ['--no-pager', ...args], { encoding: 'utf8', env: { ...env, LC_ALL: 'C', SYSTEMD_COLORS: '0' } })
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', error: r.error }
}

// Verify's only complaint when the package is not installed on this machine: the ExecStart binary is missing.
// Every other line (an unknown key, a value that does not parse, a missing dependency) is a real problem.
function verifyProblems (out: string, execStart: string): string[] {
  const bin = execStart.split(/\s+/)[0] ?? ''
  return out.split('\n').filter(l => l.trim() !== '')
    .filter(l => existsSync(bin) || !l.includes(`Command ${bin} is not executable`))
}

const probe = analyze(['--version'])
if (probe.error !== undefined) {
  t.fail('systemd-analyze is missing: install it with `apt-get install --no-install-recommends systemd`')
} else {
  t.test('system service: overall exposure from systemd-analyze security is at most 3.0', async t => {
    const r = analyze(['security', '--offline=true', systemService])
    const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(r.stdout)
    t.ok(m, 'systemd-analyze printed an overall exposure level')
    const exposure = Number(m?.[1])
    t.ok(exposure <= MAX_EXPOSURE, `exposure ${exposure} <= ${MAX_EXPOSURE}`)
    t.equal(r.stderr.trim(), '', 'no warning about the unit file')
  })

  t.test('system service: the hardening that SPEC section 10 names is in force', async t => {
    const r = analyze(['security', '--offline=true', '--json=short', systemService])
    const checks = new Map((JSON.parse(r.stdout) as Array<{ json_field: string, set: boolean }>)
      .map(c => [c.json_field, c.set]))
    for (const field of ['ProtectSystem', 'NoNewPrivileges', 'UMask', 'AmbientCapabilities',
      'CapabilityBoundingSet_CAP_SYS_ADMIN', 'CapabilityBoundingSet_CAP_SYS_PTRACE', 'SystemCallArchitectures']) {
      t.equal(checks.get(field), true, field)
    }
    // SPEC section 10: users start runs from /tmp and /var/tmp, and the daemon must see the directories they see.
    t.equal(checks.get('PrivateTmp'), false, 'no PrivateTmp= (nor anything that implies it)')
  })

  t.test('system service keeps what the daemon needs', async t => {
    const unit = parseUnit(systemService)
    const caps = (unit.get('Service')?.get('CapabilityBoundingSet') ?? []).join(' ').split(/\s+/).filter(Boolean)
    t.same([...new Set(caps)].sort(), NEEDED_CAPS, 'bounding set is exactly what the daemon uses')
    t.equal(one(unit, 'Service', 'KillMode'), 'process', 'launched runs outlive a restart of the daemon')
    t.equal(one(unit, 'Service', 'TimeoutStopSec'), '20')
    t.equal(one(unit, 'Service', 'UMask'), '0077')
    // 0711: search only, so a user's Nextflow can reach its run dir under the default runs root <state>/runs.
    t.equal(one(unit, 'Service', 'StateDirectoryMode'), '0711')
    t.equal(one(unit, 'Service', 'LoadCredential'), 'master-key:/etc/nf-secretsd/master.key')
    t.match(one(unit, 'Service', 'ExecStart'), /^\/\S+\/nf-secretsd --mode system$/)
    t.not(one(unit, 'Service', 'Type'), 'notify', 'the daemon has no sd_notify')
    t.equal(one(unit, 'Service', 'RuntimeDirectoryPreserve'), 'yes', 'a stop keeps the socket unit\'s socket')
    t.ok(unit.get('Service')?.get('ReadWritePaths')?.includes('/var/lib/nf-secretsd'), 'state dir writable')
  })

  t.test('socket unit: every user reaches the system socket', async t => {
    const unit = parseUnit(systemSocket)
    t.equal(one(unit, 'Socket', 'ListenStream'), '/run/nf-secretsd/api.sock')
    t.equal(one(unit, 'Socket', 'SocketMode'), '0666')
    t.equal(one(unit, 'Socket', 'DirectoryMode'), '0755')
    t.equal(one(parseUnit(systemService), 'Service', 'RuntimeDirectoryMode'), '0755', 'the service leaves the dir as open')
  })

  t.test('user service listens under %t', async t => {
    const unit = parseUnit(userService)
    t.match(one(unit, 'Service', 'ExecStart'), /--mode user --socket %t\/nf-secretsd\/api\.sock$/)
    t.equal(one(unit, 'Service', 'KillMode'), 'process')
    t.equal(one(unit, 'Service', 'TimeoutStopSec'), '20')
  })

  // bench/daemon.ts starts the daemon with the user unit's Environment= (RSS at 10,000 dirs is measured with it):
  // the system unit must give the same, or the figure would describe only one of the two.
  t.test('both services start the daemon with the same memory settings', async t => {
    const env = (file: string): string[] => parseUnit(file).get('Service')?.get('Environment') ?? []
    t.same(env(systemService), env(userService))
    t.ok(env(userService).includes('MALLOC_ARENA_MAX=2'))
    t.ok(env(userService).some(e => /^NODE_OPTIONS=.*--max-semi-space-size=\d+/.test(e)))
  })

  // verify works without a running systemd (it loads the units into an offline manager), so it is not skipped.
  t.test('systemd-analyze verify finds nothing wrong with the system units', async t => {
    const r = analyze(['verify', systemSocket, systemService])
    const execStart = one(parseUnit(systemService), 'Service', 'ExecStart') ?? ''
    t.same(verifyProblems(r.stdout + r.stderr, execStart), [])
  })

  t.test('systemd-analyze --user verify finds nothing wrong with the user unit', async t => {
    // A user manager needs a runtime dir to resolve %t, even offline.
    const runtime = mkdtempSync(join(tmpdir(), 'nfs-xdg-'))
    t.teardown(() => rmSync(runtime, { recursive: true, force: true }))
    const r = analyze(['--user', 'verify', userService], { ...process.env, XDG_RUNTIME_DIR: runtime })
    const execStart = one(parseUnit(userService), 'Service', 'ExecStart') ?? ''
    t.same(verifyProblems(r.stdout + r.stderr, execStart), [])
  })
}
