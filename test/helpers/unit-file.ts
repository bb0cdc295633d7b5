// systemd unit files read the way the tests need them: section -> key -> every value given (keys may repeat),
// comments and blank lines skipped. Shared by the offline unit checks and the container suite, which compares what
// the kernel shows of the running daemon with what the shipped unit says.
import { readFileSync } from 'node:fs'

export type UnitFile = Map<string, Map<string, string[]>>

export function parseUnit (file: string): UnitFile {
  const sections: UnitFile = new Map()
  let current: Map<string, string[]> | undefined
  for (const raw of readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const head = /^\[(.+)\]$/.exec(line)
    if (head?.[1] !== undefined) {
      current = new Map()
      sections.set(head[1], current)
      continue
    }
    const eq = line.indexOf('=')
    if (eq < 0 || current === undefined) continue
    const key = line.slice(0, eq)
    current.set(key, [...(current.get(key) ?? []), line.slice(eq + 1)])
  }
  return sections
}

/** The value in force: the last one given. */
export function one (unit: UnitFile, section: string, key: string): string | undefined {
  return unit.get(section)?.get(key)?.at(-1)
}

// Linux capability numbers (linux/capability.h), for reading CapBnd in /proc/PID/status.
const CAPS = ['CHOWN', 'DAC_OVERRIDE', 'DAC_READ_SEARCH', 'FOWNER', 'FSETID', 'KILL', 'SETGID', 'SETUID', 'SETPCAP',
  'LINUX_IMMUTABLE', 'NET_BIND_SERVICE', 'NET_BROADCAST', 'NET_ADMIN', 'NET_RAW', 'IPC_LOCK', 'IPC_OWNER', 'SYS_MODULE',
  'SYS_RAWIO', 'SYS_CHROOT', 'SYS_PTRACE', 'SYS_PACCT', 'SYS_ADMIN', 'SYS_BOOT', 'SYS_NICE', 'SYS_RESOURCE', 'SYS_TIME',
  'SYS_TTY_CONFIG', 'MKNOD', 'LEASE', 'AUDIT_WRITE', 'AUDIT_CONTROL', 'SETFCAP', 'MAC_OVERRIDE', 'MAC_ADMIN', 'SYSLOG',
  'WAKE_ALARM', 'BLOCK_SUSPEND', 'AUDIT_READ', 'PERFMON', 'BPF', 'CHECKPOINT_RESTORE'].map(n => `CAP_${n}`)

/** The names set in a capability mask as /proc prints it (hex), sorted. */
export function capNames (hex: string): string[] {
  const mask = BigInt(`0x${hex}`)
  return CAPS.filter((_, i) => (mask >> BigInt(i)) & 1n).sort()
}
