// status warnings, judged from facts (pure): each misconfiguration has its stable code; a good setup has none.
import t from 'tap'
import { runsRootWarnings, type RunsRootFacts } from '../../adapters/hpc/status-warnings.js'
import { stateDirWarnings } from '../../daemon/os/state-dir.js'

t.test('runsRootWarnings', async t => {
  const good: RunsRootFacts = { resolved: '/shared/nf-secretsd/runs', fsType: 'nfs4', hardLinks: true, closedComponents: [] }
  const cases: Array<[string, Partial<RunsRootFacts>, string[]]> = [
    ['a good shared root', {}, []],
    ['lustre', { fsType: 'lustre' }, []],
    ['local disk', { fsType: 'ext4' }, ['NFS_WARN_RUNS_ROOT_NOT_SHARED']],
    ['unknown fs', { fsType: null }, ['NFS_WARN_RUNS_ROOT_NOT_SHARED']],
    ['no hard links', { fsType: 'fuse.sshfs', hardLinks: false }, ['NFS_WARN_RUNS_ROOT_NO_HARDLINKS']],
    ['probe not run', { hardLinks: null }, []],
    ['a space after symlinks', { resolved: '/shared/my runs' }, ['NFS_WARN_RUNS_ROOT_CHARACTERS']],
    ['a dollar', { resolved: '/shared/$x' }, ['NFS_WARN_RUNS_ROOT_CHARACTERS']],
    ['closed parent', { closedComponents: ['/shared'] }, ['NFS_WARN_RUNS_ROOT_MODE']],
    ['all at once', { resolved: '/a b', fsType: 'tmpfs', hardLinks: false, closedComponents: ['/a b'] },
      ['NFS_WARN_RUNS_ROOT_NOT_SHARED', 'NFS_WARN_RUNS_ROOT_NO_HARDLINKS', 'NFS_WARN_RUNS_ROOT_CHARACTERS', 'NFS_WARN_RUNS_ROOT_MODE']]
  ]
  for (const [what, over, codes] of cases) t.same(runsRootWarnings({ ...good, ...over }).map(w => w.code), codes, what)
  const paths = (over: Partial<RunsRootFacts>): string[][] => runsRootWarnings({ ...good, ...over }).map(w => w.paths)
  t.same(paths({ closedComponents: ['/shared', '/shared/nf-secretsd'] }), [['/shared', '/shared/nf-secretsd']], 'mode: the dirs to open up')
  t.same(paths({ fsType: 'ext4', hardLinks: false }), [['/shared/nf-secretsd/runs'], ['/shared/nf-secretsd/runs']], 'the others: the runs root')
})

t.test('stateDirWarnings', async t => {
  const base = { stateDir: '/var/lib/nf-secretsd', fsType: 'ext4', previousHost: null as string | null, host: 'login1', system: true }
  const cases: Array<[string, Partial<typeof base>, string[]]> = [
    ['first start', {}, []],
    ['same host before', { previousHost: 'login1' }, []],
    ['another host before', { previousHost: 'login2' }, ['NFS_WARN_STATE_DIR_OTHER_HOST']],
    ['system state dir on NFS', { fsType: 'nfs' }, ['NFS_WARN_STATE_DIR_SHARED']],
    ['user mode in a shared home', { fsType: 'nfs', system: false }, []],
    ['user mode, another host before', { fsType: 'nfs', system: false, previousHost: 'login2' }, ['NFS_WARN_STATE_DIR_OTHER_HOST']]
  ]
  for (const [what, over, codes] of cases) t.same(stateDirWarnings({ ...base, ...over }).map(w => w.code), codes, what)
  t.same(stateDirWarnings({ ...base, fsType: 'nfs', previousHost: 'login2' }).map(w => w.paths), [[base.stateDir], [base.stateDir]], 'the state dir')
})
