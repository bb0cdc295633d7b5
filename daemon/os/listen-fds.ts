// sd_listen_fds(3) in a few lines: the sockets systemd passed us, starting at fd 3, when LISTEN_PID names us.
export function listenFds (env: NodeJS.ProcessEnv, pid: number): number[] {
  if (env.LISTEN_PID === undefined || Number(env.LISTEN_PID) !== pid) return []
  const n = Number(env.LISTEN_FDS ?? '0')
  if (!Number.isInteger(n) || n <= 0) return []
  return Array.from({ length: n }, (_, i) => 3 + i)
}
