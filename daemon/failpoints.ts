// Failpoints for crash tests (after etcd's gofail): NF_SECRETSD_FAILPOINTS=name[,name] makes the daemon SIGKILL itself
// when it reaches that point, so a test can prove that a crash at exactly that instant leaves nothing behind.
// Read once at start; with the variable unset every failpoint is a Set lookup that finds nothing.
const armed = new Set((process.env.NF_SECRETSD_FAILPOINTS ?? '').split(',').map(s => s.trim()).filter(s => s !== ''))

export type FailpointName = 'run.after-intent' | 'run.after-provision' | 'revoke.before-target' | 'revoke.after-target' | 'ledger.after-archive'

export function failpoint (name: FailpointName): void {
  if (armed.has(name)) process.kill(process.pid, 'SIGKILL')
}
