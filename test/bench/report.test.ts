// The pure parts of bench/: nearest-rank percentiles and the table. No timing is asserted anywhere.
import t from 'tap'
import { percentile, summarize } from '../../bench/stats.js'
import { formatTable, ratio, type Figure } from '../../bench/report.js'

t.test('nearest-rank percentiles never report better than a seen sample', async t => {
  const twenty = Array.from({ length: 20 }, (_, i) => i + 1)
  t.equal(percentile(twenty, 99), 20, 'p99 of 20 samples is the slowest')
  t.equal(percentile(twenty, 50), 10)
  t.equal(percentile([7], 99), 7)
  t.ok(Number.isNaN(percentile([], 50)))
  const s = summarize([3, 1, 2])
  t.same({ n: s.n, p50: s.p50, p99: s.p99, max: s.max, mean: s.mean }, { n: 3, p50: 2, p99: 3, max: 3, mean: 2 })
})

t.test('the table prints every figure with its baseline, ratio and a plain NO for a miss', async t => {
  const figs: Figure[] = [
    { figure: 'a req/s', value: 50, baselineLabel: 'bare', baseline: 100, ratio: ratio(50, 100), target: 'ratio >= 0.5', met: true },
    { figure: 'b p99 ms', value: 12.345, baselineLabel: 'floor', baseline: 0, ratio: ratio(12.345, 0), target: 'p99 < 10 ms', met: false, note: 'loaded' },
    { figure: 'c', value: Number.NaN, baselineLabel: 'x', baseline: 1, ratio: Number.NaN, target: '-', met: null }
  ]
  const lines = formatTable(figs).split('\n')
  t.match(lines[0], /^figure\s+value\s+baseline\s+ratio\s+target\s+met\?$/)
  t.match(lines[2], /^a req\/s\s+50\s+100 \(bare\)\s+0\.5\s+ratio >= 0\.5\s+yes$/)
  t.match(lines[3], /^b p99 ms\s+12\.3\s+0 \(floor\)\s+n\/a\s+p99 < 10 ms\s+NO$/)
  t.match(lines[4], /^c\s+n\/a\s+1 \(x\)\s+n\/a\s+-\s+-$/)
  t.ok(lines.includes('  - b p99 ms: loaded'))
})
