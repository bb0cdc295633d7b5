// What a daemon's run ledger holds on disk: runs.json (the snapshot) with the changes of runs.journal after it
// applied (store/run-journal.ts), read without changing either and checked as a start checks them (the daemon's own
// replayLedger). Tests look at this, not at runs.json alone, which lags the journal until the ledger folds it in (once
// it has been quiet for a quarter of a second, and at a stop).
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { journalPathOf, replayLedger } from '../../daemon/store/run-ledger.js'
import type { RunRecord } from '../../daemon/types.js'

/** The ledger on disk of the daemon whose state dir is `stateDir` (or of the ledger at `<stateDir>/<file>`). */
export function ledgerOnDisk (stateDir: string, file = 'runs.json'): { runs: RunRecord[] } {
  const path = join(stateDir, file)
  const journal = journalPathOf(path)
  const snapshot = existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) as unknown : null
  return { runs: replayLedger(snapshot, existsSync(journal) ? readFileSync(journal) : null, path) }
}

/** Every byte of the ledger's files as text (the snapshot and the journal), for a look for values that must not be there. */
export function ledgerText (stateDir: string): string {
  return ['runs.json', 'runs.journal'].map(f => join(stateDir, f)).filter(p => existsSync(p)).map(p => readFileSync(p, 'utf8')).join('\n')
}

/** Hand a stopped daemon's ledger these runs: runs.json holds them, and no journal is left to apply on top. */
export function seedLedger (stateDir: string, runs: unknown[]): void {
  writeFileSync(join(stateDir, 'runs.json'), `${JSON.stringify({ format: 1, runs })}\n`, { mode: 0o600 })
  rmSync(join(stateDir, 'runs.journal'), { force: true })
}
