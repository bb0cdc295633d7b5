// The etcd watch's reconnect delay (store/etcd/etcd-client.ts): the client's default grows to 30 s, which kept a
// healed node's view stale for 28 s in test/cluster/partition.test.ts (1.7 s with this one). Pure: no etcd needed.
import t from 'tap'
import { cappedBackoff } from '../../daemon/store/etcd/etcd-client.js'

t.test('the watch backoff doubles from its first delay and stops at its cap', async t => {
  const durations: number[] = []
  let b = cappedBackoff(50, 1000)
  for (let i = 0; i < 8; i++) {
    b = b.next(undefined)
    durations.push(b.duration)
  }
  t.same(durations, [100, 200, 400, 800, 1000, 1000, 1000, 1000])
})
