import t from 'tap'
import { nfsError, isCoded, exitCodeFor, ERROR_SPECS } from '../daemon/errors.js'

t.test('coded errors carry code, status and exit code', async t => {
  const err = nfsError('NFS_ERR_SECRET_NOT_FOUND', ['API_TOKEN'])
  t.equal(err.code, 'NFS_ERR_SECRET_NOT_FOUND')
  t.equal(err.statusCode, 404)
  t.ok(isCoded(err, 'NFS_ERR_SECRET_NOT_FOUND'))
  t.equal(exitCodeFor(err.code), 3)
  t.equal(exitCodeFor('NFS_ERR_NOPE'), 1)
  t.ok(Object.keys(ERROR_SPECS).every(c => c.startsWith('NFS_ERR_')))
})
