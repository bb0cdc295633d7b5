// The pipeline scan over real pipeline layouts written for these tests (test/fixtures/pipelines/): a DSL2 pipeline
// with local modules and subworkflows, an nf-core-shaped project, and an OWNER/REPO copy under $NXF_HOME/assets.
// Each row: what `nextflow run` was given, and exactly which names the run must get.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { interpolations, tokenize } from '../../daemon/nextflow/groovy-tokens.js'
import { references, scanPipeline, type ScanRequest } from '../../daemon/nextflow/pipeline-scan.js'
import { ROOT } from '../helpers/daemon.js'

const FIX = join(ROOT, 'test', 'fixtures', 'pipelines')
const read = (path: string): string | null => { try { return readFileSync(path, 'utf8') } catch { return null } }
const NXF_HOME = join(FIX, 'nxfhome')

const DSL2 = ['API_TOKEN', 'CONFIG_TOKEN', 'DB_PASSWORD', 'S3_KEY', 'S3_REGION_KEY', 'S3_SECRET', 'SLACK_WEBHOOK', 'TOWER_ACCESS_TOKEN']

const rows: Array<{ what: string, req: Omit<ScanRequest, 'nxfHome'>, names: string[], found?: boolean }> = [
  { what: 'DSL2: main.nf by default, its modules, subworkflows, nextflow.config and includeConfig', req: { launchDir: join(FIX, 'dsl2') }, names: DSL2 },
  { what: 'DSL2: the script named on the command line', req: { launchDir: FIX, script: 'dsl2/main.nf' }, names: DSL2 },
  { what: 'DSL2: -c adds a config', req: { launchDir: join(FIX, 'dsl2'), configs: ['extra.config'] }, names: [...DSL2, 'AWS_KEY_FROM_C'].sort() },
  { what: 'DSL2: -C replaces every config', req: { launchDir: join(FIX, 'dsl2'), replaceConfig: 'replace.config' }, names: ['API_TOKEN', 'DB_PASSWORD', 'ONLY_FROM_BIG_C', 'S3_KEY', 'S3_SECRET', 'SLACK_WEBHOOK'] },
  { what: 'nf-core shape: workflows/, modules/nf-core, modules/local, subworkflows/local/utils/main.nf, conf/modules.config', req: { launchDir: join(FIX, 'nfcore') }, names: ['BENCHLING_API_KEY', 'BENCHLING_ENDPOINT', 'BENCHLING_TENANT', 'NOTIFY_EMAIL_PASSWORD'] },
  { what: 'OWNER/REPO: the asset copy and its manifest.mainScript', req: { launchDir: join(FIX, 'dsl2', 'conf'), script: 'acme/rnaseq' }, names: ['REGISTRY_TOKEN'] },
  { what: 'no pipeline to be found', req: { launchDir: join(FIX, 'nowhere') }, names: [], found: false }
]

t.test('scan: table over real layouts', async t => {
  for (const row of rows) {
    const r = scanPipeline({ ...row.req, nxfHome: NXF_HOME }, read)
    t.same(r.names, row.names, row.what)
    t.equal(r.found, row.found ?? true, `${row.what}: found`)
  }
  const r = scanPipeline({ launchDir: join(FIX, 'dsl2'), nxfHome: NXF_HOME }, read)
  t.ok(r.unreadable.some(p => p.endsWith('modules/local/multiqc.nf')), 'a local include that is missing is reported')
  t.notOk(r.files.some(p => p.includes('nf-validation')), 'plugin includes are not files')
  for (const decoy of ['SECRET_IN_A_COMMENT', 'COMMENTED_OUT', 'BLOCK_COMMENTED', 'NOT_A_DIRECTIVE', 'NOT_INTERPOLATED', 'SINGLE_QUOTED_IS_TEXT']) {
    t.notOk(r.names.includes(decoy), `${decoy} is not a reference`)
  }
})

t.test('references: directive and reference forms, one file at a time', async t => {
  const table: Array<[string, string[]]> = [
    ['secret \'A1\'', ['A1']],
    ['secret "B1"', ['B1']],
    ['secret("C1")', ['C1']],
    ['process X {\n  secret \'D1\'\n  secret \'D2\'\n}', ['D1', 'D2']],
    ['secret = [\'E1\', "E2"]', ['E1', 'E2']],
    ['x = secrets.F1', ['F1']],
    ['x = secrets[\'G1\']', ['G1']],
    ['x = "${secrets.H1}/path"', ['H1']],
    ['x = "$secrets.I1"', ['I1']],
    ['x = "\\${secrets.J1}"', []],
    ['x = \'${secrets.K1}\'', []],
    ['x = params.secrets.L1', []],
    ['x = task.secret', []],
    ['// secret \'M1\'', []],
    ['x = """\n multi ${secrets.N1}\n"""', ['N1']],
    ['secret \'bad-name\'', []]
  ]
  for (const [src, names] of table) t.same([...references(tokenize(src)).names].sort(), names, JSON.stringify(src))
  t.same(interpolations('a ${b.c} $d.e \\$f ${ {x} }'), ['b.c', 'd.e', ' {x} '])
})
