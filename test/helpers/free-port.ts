// Ports for the tests' own servers (etcd members, moto), which bind a port we name rather than one the kernel picks.
// Picked at random below the kernel's ephemeral range and checked free by a bind. Why not listen(0) and close: that
// port comes from the ephemeral range, where every outgoing connection of every test on the machine takes its source
// port, so between the check and the server's own bind a connection could hold it. CI failed so: an etcd member could
// not bind and exited, and the wait for a healthy cluster went on past tap's timeout. Below the range only another
// test's pick can meet ours; the starters see a server that exited and start again on new ports.
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'

const taken = new Set<number>()

/** the first port of the kernel's ephemeral range (32768 when it cannot be read) */
function ephemeralLow (): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
    return Number.isInteger(low) && low > 2048 ? low : 32768
  } catch {
    return 32768
  }
}

async function bindable (port: number, host: string): Promise<boolean> {
  return await new Promise(resolve => {
    const srv = createServer()
    srv.unref()
    srv.once('error', () => { resolve(false) })
    srv.listen(port, host, () => { srv.close(() => { resolve(true) }) })
  })
}

/** A port on `host` that no socket holds now, below the ephemeral range, not handed out before by this process. */
export async function freePort (host = '127.0.0.1'): Promise<number> {
  const high = ephemeralLow()
  const low = Math.max(1024, high - 12000)
  for (let i = 0; i < 200; i++) {
    const port = low + Math.floor(Math.random() * (high - low))
    if (taken.has(port)) continue
    if (await bindable(port, host)) {
      taken.add(port)
      return port
    }
  }
  throw new Error(`no free port in ${low}-${high - 1}`)
}
