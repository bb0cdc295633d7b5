// The names of what Nextflow writes in a launch dir that the daemon reads (shared/nextflow: `.nextflow/history`,
// `.nextflow.log` rolled to `.log.1` by the next run, `.nextflow.pid` of `run -bg`). Nothing else in a launch dir
// is ever opened; work/ is never even listed (watch/walk.ts).

/** Nextflow's cache dir in a launch dir: the history, and each session's cache/<uuid>/db/LOCK. */
export const CACHE_DIR = '.nextflow'
/** The history file, inside CACHE_DIR. */
export const HISTORY = 'history'
/** The files of a launch dir itself the daemon reads. */
export const LAUNCH_FILES = new Set(['.nextflow.log', '.nextflow.log.1', '.nextflow.pid'])
