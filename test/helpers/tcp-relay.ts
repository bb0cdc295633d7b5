// A TCP relay on loopback that the test can cut like a network link: while cut, every byte either way is dropped and
// connections stay open (no RST, no FIN), as behind a switch that stopped forwarding, so the ends find out only by
// their own timeouts. Used where a partition must cut one path and not another (an etcd member from its peers while a
// node still reaches it), which one veth per namespace (netlab.ts) cannot do without a packet filter (none here).
// With `tagOf`, each connection is tagged from the head of its first request (etcd's peers say who dials in the
// X-Server-From header) and connections of one tag can be cut alone: messages between etcd members flow both on
// connections the sender dialed and on connections the receiver dialed, so a member is cut off only when its own
// dials to the others' relays are cut too. Connections that lived through a cut lost bytes: heal() closes them.
import { createServer, connect, type Socket } from 'node:net'

export interface TcpRelay {
  /** the relay's own port on 127.0.0.1 */
  port: number
  /** drop everything (no tag) or the connections tagged `tag`, current and future */
  cut: (tag?: string) => void
  heal: () => void
  close: () => Promise<void>
}

interface Teardown { teardown: (fn: () => unknown) => void }

interface Pair { a: Socket, b: Socket, tag: string | null, tainted: boolean }

/** bytes of a connection's head read for its tag at most */
const HEAD_MAX = 16 * 1024

export async function startTcpRelay (t: Teardown, target: { host: string, port: number }, opts: { tagOf?: (head: string) => string | null } = {}): Promise<TcpRelay> {
  let all = false
  const tags = new Set<string>()
  const pairs = new Set<Pair>()
  const dropped = (p: Pair): boolean => all || (p.tag !== null && tags.has(p.tag))
  const server = createServer((a) => {
    const b = connect(target)
    const pair: Pair = { a, b, tag: null, tainted: all }
    pairs.add(pair)
    const end = (): void => { a.destroy(); b.destroy(); pairs.delete(pair) }
    // Until the head is read (with tagOf) the client's bytes wait here, so a cut tag never lets a first request through.
    let head: Buffer | null = opts.tagOf === undefined ? null : Buffer.alloc(0)
    a.on('data', (d: Buffer) => {
      if (head !== null) {
        head = Buffer.concat([head, d])
        const text = head.toString('latin1')
        if (!text.includes('\r\n\r\n') && head.length < HEAD_MAX) return
        pair.tag = opts.tagOf!(text)
        if (pair.tag !== null && tags.has(pair.tag)) pair.tainted = true
        d = head
        head = null
      }
      if (!dropped(pair)) b.write(d)
    })
    b.on('data', (d) => { if (!dropped(pair)) a.write(d) })
    for (const s of [a, b]) {
      s.on('error', end)
      s.on('close', end)
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  const close = async (): Promise<void> => {
    for (const p of pairs) { p.a.destroy(); p.b.destroy() }
    pairs.clear()
    await new Promise<void>((resolve) => server.close(() => { resolve() }))
  }
  t.teardown(close)
  return {
    port,
    cut: (tag) => {
      if (tag === undefined) all = true
      else tags.add(tag)
      for (const p of pairs) if (dropped(p)) p.tainted = true
    },
    heal: () => {
      all = false
      tags.clear()
      for (const p of [...pairs]) if (p.tainted) { p.a.destroy(); p.b.destroy(); pairs.delete(p) }
    },
    close
  }
}
