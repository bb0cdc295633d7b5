// Types for check-engines.mjs, plain JS so that it runs with node alone.
export interface LockEntry { version?: string, engines?: unknown, dev?: boolean, optional?: boolean }
export function sampleVersions (ours: string): string[]
export function enginesMismatches (ours: string, packages: Record<string, LockEntry>): Array<{ path: string, version: string, node: string, fails: string[] }>
export function readLock (root: string): { ours: string, lockRoot: { engines?: { node?: string } }, packages: Record<string, LockEntry> }
