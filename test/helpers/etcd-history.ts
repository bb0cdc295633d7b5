// What etcd itself recorded for a few keys since a revision, read from outside the daemons: a watch from that revision
// with the previous values, so a test that finds something missing can say whether it was ever written, when, and
// who deleted it (a secret's delete puts sdel/<scope>/<name> naming the deleter in the same transaction). Values are
// shortened to their first bytes and a secret's ciphertext (sval/) is never printed: only that it was put.
import { Etcd3 } from 'etcd3'

export interface KeyEvent { revision: number, type: 'put' | 'delete', key: string, value: string | null, lease: string }

/** Open a client on `endpoints`; the revision etcd is at now (a watch from it later replays everything after). */
export async function etcdRevision (endpoints: string[]): Promise<number> {
  const client = new Etcd3({ hosts: endpoints })
  try {
    const res = await client.get('\0').exec()
    return Number(res.header.revision)
  } finally {
    client.close()
  }
}

/**
 * Every put and delete under `prefix` since `fromRevision` whose key (relative to the prefix) `keep` accepts, in
 * revision order. Reads until the watch has caught up with the revision etcd is at when the call starts.
 */
export async function keyHistory (endpoints: string[], prefix: string, fromRevision: number, keep: (key: string) => boolean): Promise<KeyEvent[]> {
  const client = new Etcd3({ hosts: endpoints })
  const ns = client.namespace(prefix)
  const out: KeyEvent[] = []
  try {
    // A write of our own (under no daemon's prefix) so the watch has an event to reach even when nothing else changed.
    const now = Number((await ns.put('zz-history-mark').value('').exec()).header.revision)
    const watcher = await ns.watch().prefix('').startRevision(String(fromRevision)).withPreviousKV().create()
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`the history watch did not reach revision ${now}`)) }, 30_000)
      watcher.on('data', (res) => {
        for (const ev of res.events ?? []) {
          const key = ev.kv.key.toString()
          if (!keep(key)) continue
          const secret = key.startsWith('sval/')
          out.push({
            revision: Number(ev.kv.mod_revision),
            type: ev.type === 'Delete' ? 'delete' : 'put',
            key,
            value: ev.type === 'Delete' || secret ? null : ev.kv.value.toString().slice(0, 200),
            lease: String(ev.kv.lease)
          })
        }
        if (Number(res.header.revision) >= now) { clearTimeout(timer); resolve() }
      })
    })
    await watcher.cancel()
  } finally {
    client.close()
  }
  return out
}
