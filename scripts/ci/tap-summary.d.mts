// Types for tap-summary.mjs, which stays plain JS so that CI runs it with node alone, before any build.
export interface TapCounts { total: number, pass: number, fail: number, skip: number, todo: number }
export interface Summary { passed: number, failed: number, skipped: number, missing: string[] }
export function parseTapSummary (text: string): TapCounts | null
export function summarize (outputs: Array<{ name: string, text: string }>): Summary
export function closingLine (sum: { passed: number, failed: number, skipped: number }): string
