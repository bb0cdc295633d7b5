// The CLI side of least privilege: which pipeline a wrapped command line runs (pure, table-tested), and the request
// it turns into (--only > --all > the scan's names > everything when no pipeline is found).
import t from 'tap'
import { join } from 'node:path'
import { scanRequestOf } from '../../daemon/cli/least-privilege.js'

const env = { HOME: '/home/u' }
const nxf = '/home/u/.nextflow'

t.test('scanRequestOf: nextflow [global options] run [options] SCRIPT', async t => {
  const rows: Array<[string[], unknown]> = [
    [['nextflow', 'run', 'main.nf'], { launchDir: '/w', script: 'main.nf', nxfHome: nxf }],
    [['/opt/nf/nextflow', 'run', '.'], { launchDir: '/w', script: '.', nxfHome: nxf }],
    [['nextflow', '-q', '-bg', '-log', 'x.log', '-c', 'a.config', 'run', 'acme/rnaseq', '-r', 'v1', '-profile', 'slurm', '-resume', '--input', 's.csv'],
      { launchDir: '/w', script: 'acme/rnaseq', configs: ['a.config'], nxfHome: nxf }],
    [['nextflow', 'run', '-profile', 'test', 'pipe.nf', '-c', 'b.config', '-c', 'c.config'], { launchDir: '/w', script: 'pipe.nf', configs: ['b.config', 'c.config'], nxfHome: nxf }],
    [['nextflow', '-C', 'only.config', 'run', 'main.nf'], { launchDir: '/w', script: 'main.nf', replaceConfig: 'only.config', nxfHome: nxf }],
    [['nextflow', 'run', 'main.nf', '-C', 'only.config'], { launchDir: '/w', script: 'main.nf', replaceConfig: 'only.config', nxfHome: nxf }],
    [['nextflow', 'run', 'acme/rnaseq', '-main-script', 'pipeline.nf'], { launchDir: '/w', script: 'acme/rnaseq', nxfHome: nxf }],
    [['nextflow', 'run'], { launchDir: '/w', nxfHome: nxf }],
    [['nextflow', 'log'], null],
    [['nextflow', '-version', 'run', 'x'], null],
    [['nextflow', 'secrets', 'list'], null],
    [['bash', 'go.sh'], null],
    [['nextflowx', 'run', 'main.nf'], null],
    [[], null]
  ]
  for (const [cmd, want] of rows) t.same(scanRequestOf(cmd, '/w', env), want, cmd.join(' '))
  t.equal(scanRequestOf(['nextflow', 'run', 'm.nf'], '/w', { HOME: '/h', NXF_HOME: '/nx' })?.nxfHome, '/nx', 'NXF_HOME wins')
  t.equal(scanRequestOf(['nextflow', 'run', 'm.nf'], '/w', { HOME: '/h' })?.nxfHome, join('/h', '.nextflow'))
})
