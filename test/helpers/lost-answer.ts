// Loses the answer of one etcd transaction after etcd applied it, as a member killed mid-answer or a connection cut
// before the answer does: the transaction goes to etcd for real, and the client is then told UNAVAILABLE (gRPC code
// 14) instead of the answer. It is done at the gRPC client of each member inside the etcd3 client, below its fault
// handling, so the client's own retry runs as it would (the member's connections reset, the next try on another
// member). A TCP proxy cannot pick one call out of a member's single HTTP/2 connection (the watch, keepalives and
// other calls share it); this hook picks it by the key it writes. It can also hold one back while another write goes first.
import type { Etcd3 } from 'etcd3'

type Callback = (err: Error | null | undefined, res?: unknown) => void
type Call = (payload: unknown, metadata: unknown, options: unknown, cb: Callback) => unknown
interface Host { getServiceClient: (name: string) => object }
interface TxnRequest { success?: Array<{ request_put?: { key?: Buffer }, request_delete_range?: { key?: Buffer } }> }

/**
 * Tries the etcd3 client makes of one call before it gives up: the first and three retries (its default policy is
 * cockatiel's retry with maxAttempts 3, which counts retries).
 */
export const CLIENT_TRIES = 4

export interface LostAnswers {
  /**
   * Lose the answer of the next transaction that puts or deletes a key ending in `keySuffix` (after a namespace's
   * prefix), once; with `times`, of that many in a row (CLIENT_TRIES: every try of the client's, the first having committed).
   */
  loseNext: (keySuffix: string, times?: number) => void
  /** Answer the next `times` such transactions UNAVAILABLE without sending them: a write that never reached etcd. */
  dropNext: (keySuffix: string, times?: number) => void
  /**
   * Hold the next such transaction back, run `meanwhile`, and send it once that has settled (its answer untouched): a
   * write whose sender read its state before another node's write and that reaches etcd after it, every time.
   */
  holdNext: (keySuffix: string, meanwhile: () => Promise<unknown>) => void
  /**
   * Send the next such transaction, and once etcd has applied it run `meanwhile` (e.g. take the quorum away) before
   * the client is told UNAVAILABLE instead of the answer: the client's own retries then meet what `meanwhile` left.
   */
  loseThen: (keySuffix: string, meanwhile: () => Promise<unknown>) => void
  /** answers lost so far (dropped ones included) */
  readonly lost: number
}

export function loseAnswers (client: Etcd3): LostAnswers {
  const hosts = (client as unknown as { pool: { hosts: Host[] } }).pool.hosts
  let armed: { suffix: string, times: number, send: boolean, meanwhile?: () => Promise<unknown>, after?: () => Promise<unknown> } | null = null
  let lost = 0
  const picks = (payload: unknown): boolean =>
    armed !== null && ((payload as TxnRequest).success ?? []).some(op =>
      (op.request_put ?? op.request_delete_range)?.key?.toString().endsWith(armed!.suffix) === true)
  for (const host of hosts) {
    const real = host.getServiceClient.bind(host)
    host.getServiceClient = (name: string) => {
      const service = real(name)
      if (name !== 'KV') return service
      return new Proxy(service, {
        get (target, prop) {
          const v = Reflect.get(target, prop, target) as unknown
          if (typeof v !== 'function') return v
          if (prop !== 'txn') return v.bind(target)
          const call = v as Call
          return (payload: unknown, metadata: unknown, options: unknown, cb: Callback) => {
            if (!picks(payload)) return call.call(target, payload, metadata, options, cb)
            const was = armed!
            armed = was.times > 1 ? { ...was, times: was.times - 1 } : null
            if (was.meanwhile !== undefined) {
              const send = (): void => { call.call(target, payload, metadata, options, cb) }
              void was.meanwhile().then(send, send)
              return
            }
            const unavailable = (): void => {
              lost++
              cb(Object.assign(new Error('14 UNAVAILABLE: answer lost (injected by the test)'), { code: 14 }))
            }
            if (!was.send) {
              setImmediate(unavailable)
              return
            }
            return call.call(target, payload, metadata, options, (err, res) => {
              if (err != null) {
                // It did not get through: lose the next one instead.
                armed = was
                cb(err, res)
                return
              }
              if (was.after !== undefined) void was.after().then(unavailable, unavailable)
              else unavailable()
            })
          }
        }
      })
    }
  }
  return {
    loseNext: (keySuffix, times = 1) => { armed = { suffix: keySuffix, times, send: true } },
    dropNext: (keySuffix, times = 1) => { armed = { suffix: keySuffix, times, send: false } },
    holdNext: (keySuffix, meanwhile) => { armed = { suffix: keySuffix, times: 1, send: true, meanwhile } },
    loseThen: (keySuffix, after) => { armed = { suffix: keySuffix, times: 1, send: true, after } },
    get lost () { return lost }
  }
}
