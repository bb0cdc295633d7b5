// A login node as docs/install.md sets one up, inside the container: the packed tarball installed with
// `npm install -g`, the admin group, the config, the key, the shipped units (with the drop-in the docs show for a
// runs root elsewhere), both enabled. And the commands the journey runs there as alice, bob and carol.
import { createHash } from 'node:crypto'
import { basename } from 'node:path'
import type { Container, Result } from '../helpers/systemd-container.js'

export const RUNS_ROOT = '/shared/nf-secretsd/runs'
export const UNIT_DIR = '/etc/systemd/system'

// Reads the run's Nextflow secrets file as Nextflow's LocalSecretsProvider does (a JSON array of {name, value},
// refused unless exactly 0600) as the user the run is for, and records in ./nxf-read.json what it found: the file's
// path, owner and mode, and a hash of each value (a value is never printed).
const READ_STORE = `#!/usr/bin/env node
const { createHash } = require('node:crypto')
const fs = require('node:fs')
const path = process.env.NXF_SECRETS_FILE
const st = fs.statSync(path)
const secrets = JSON.parse(fs.readFileSync(path, 'utf8'))
const hashes = Object.fromEntries(secrets.map(s => [s.name, createHash('sha256').update(s.value).digest('hex')]))
fs.writeFileSync('nxf-read.json', JSON.stringify({ path, uid: st.uid, mode: st.mode & 0o777, me: process.getuid(), hashes }))
process.exit((st.mode & 0o777) === 0o600 && st.uid === process.getuid() ? 0 : 9)
`

export function sha256 (value: string): string {
  return createHash('sha256').update(value).digest('hex')
}

function quote (s: string): string {
  return `'${s.replaceAll("'", "'\\''")}'`
}

/** install.md, steps 1 to 4, as root in the container. Throws with the script's output when a step fails. */
export async function installAsDocsSay (c: Container, tarball: string): Promise<void> {
  const script = `set -e
cd /root
npm install -g --offline --no-audit --no-fund ./${basename(tarball)}
nf-secretsd --version
getent group nf-secrets-admin >/dev/null || groupadd nf-secrets-admin
usermod -aG nf-secrets-admin alice
install -d -m 0700 /etc/nf-secretsd
printf '{\\n  "hpc": { "runsRoot": "${RUNS_ROOT}" }\\n}\\n' > /etc/nf-secretsd/config.json
install -d -m 0711 ${RUNS_ROOT}
(umask 077; head -c32 /dev/urandom | base64 > /etc/nf-secretsd/master.key)
nf-secretsd check-config --mode system >/dev/null
cp "$(npm root -g)"/nf-secretsd/systemd/nf-secretsd.{service,socket} ${UNIT_DIR}/
mkdir -p ${UNIT_DIR}/nf-secretsd.service.d
printf '[Service]\\nReadWritePaths=${RUNS_ROOT}\\n' > ${UNIT_DIR}/nf-secretsd.service.d/override.conf
systemctl daemon-reload
systemctl enable --now nf-secretsd.socket nf-secretsd.service
cat > /usr/local/bin/nxf-read-store <<'EOF'
${READ_STORE}EOF
chmod 0755 /usr/local/bin/nxf-read-store
`
  const r = await c.exec(['/bin/bash', '-c', script], { timeoutMs: 300_000 })
  if (r.code !== 0) throw new Error(`install as docs/install.md says failed (${r.code ?? 'signal'}):\n${r.stdout}\n${r.stderr}`)
}

/** nf-secrets as `user` in `dir` (its own cwd is where run, arm and launch take their launch dir from). */
export function nfs (c: Container, user: string, dir: string, args: string[], input?: string): Promise<Result> {
  return c.sh(`cd ${quote(dir)} && exec nf-secrets ${args.map(quote).join(' ')}`, { user, ...(input !== undefined ? { input } : {}), timeoutMs: 120_000 })
}

/** A shell script as `user` (root when undefined); its output. */
export async function shOut (c: Container, script: string, user?: string): Promise<string> {
  const r = await c.sh(script, user !== undefined ? { user } : {})
  return r.stdout.trim()
}

/** JSON from a command's stdout, or undefined when it printed none. */
export function json<T> (r: Result): T | undefined {
  try {
    return JSON.parse(r.stdout) as T
  } catch {
    return undefined
  }
}

export interface RunView { runId: string, state: string, exitCode: number | null, signal: string | null, targets: Record<string, { state: string }> }

/** Poll `runs show` as `user` until the run is in one of `states` (150 tries); the last view. */
export async function runReaches (c: Container, user: string, runId: string, states: string[]): Promise<RunView | undefined> {
  let view: RunView | undefined
  for (let i = 0; i < 150; i++) {
    view = json<RunView>(await nfs(c, user, '/', ['--json', 'runs', 'show', runId]))
    if (view !== undefined && states.includes(view.state)) return view
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  return view
}

/** Ask until `check` holds (50 tries, 100 ms apart). */
export async function eventually (check: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    if (await check()) return true
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  return false
}

/** The daemon's pid as systemd knows it (0 when it is not running). */
export async function mainPid (c: Container): Promise<number> {
  return Number(await shOut(c, 'systemctl show -p MainPID --value nf-secretsd.service'))
}

/** The daemon's JSON log lines, from the journal. */
export async function journal (c: Container): Promise<Array<Record<string, unknown>>> {
  const out = await shOut(c, 'journalctl -u nf-secretsd.service -o cat --no-pager')
  return out.split('\n').flatMap(l => {
    try {
      return [JSON.parse(l) as Record<string, unknown>]
    } catch {
      return []
    }
  })
}
