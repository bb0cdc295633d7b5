// Failpoints for crash tests (after etcd's gofail): NF_SECRETSD_FAILPOINTS=name[,name] makes the daemon SIGKILL itself
// when it reaches that point, so a test can prove that a crash at exactly that instant leaves nothing behind.
// `name=ms` holds an asynchronous point for that long instead (gofail's sleep): a test can then make an order that
// is a race in production (the early revoke done before the end's record is written) happen every time.
// Read once at start; with the variable unset every failpoint is a Map lookup that finds nothing.
const armed = new Map<string, number | null>()
for (const item of (process.env.NF_SECRETSD_FAILPOINTS ?? '').split(',')) {
  const [name = '', ms] = item.trim().split('=')
  if (name === '') continue
  const pause = ms === undefined ? null : Number(ms)
  // A hold that is not a number of ms arms nothing: a typo must not turn a hold into a kill.
  if (pause !== null && !(Number.isFinite(pause) && pause >= 0)) continue
  armed.set(name, pause)
}

export type FailpointName = 'run.after-intent' | 'run.after-provision' | 'revoke.before-target' | 'revoke.after-target' | 'ledger.after-archive' | 'ledger.decided-before-commit'

export function failpoint (name: FailpointName): void {
  if (armed.has(name) && armed.get(name) === null) process.kill(process.pid, 'SIGKILL')
}

/** A point that can be held (`name=ms`) or killed at (`name`); null when not armed, so the caller awaits nothing. */
export function failpointPause (name: FailpointName): Promise<void> | null {
  if (!armed.has(name)) return null
  const ms = armed.get(name)
  if (ms === null || ms === undefined) { failpoint(name); return null }
  return new Promise(resolve => setTimeout(resolve, ms))
}
