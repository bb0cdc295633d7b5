// Which secrets a pipeline uses (SPEC section 11, least privilege by default): the `secret` directives and the
// `secrets.NAME` references of the main script, of the local modules and subworkflows it includes (recursively), of
// nextflow.config, of the files it includeConfig's, and of -c/-C configs; for `nextflow run OWNER/REPO`, the copy
// Nextflow keeps under $NXF_HOME/assets. Pure: files come through `read`, so tests need no disk and the CLI reads
// them with the user's own rights. Names in comments and plain strings are not references.
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { interpolations, tokenize, type Token } from './groovy-tokens.js'

export interface ScanRequest {
  /** where `nextflow run` is started */
  launchDir: string
  /** the script named on the command line: a path, or OWNER/REPO; default main.nf in the launch dir */
  script?: string
  /** -c files, added to the defaults */
  configs?: string[]
  /** a -C file: the only config read */
  replaceConfig?: string
  /** $NXF_HOME (default ~/.nextflow) */
  nxfHome: string
}

export interface ScanResult {
  /** false when no pipeline script could be read: then every resolved secret is provisioned */
  found: boolean
  /** the referenced names, sorted */
  names: string[]
  /** every file read, in order */
  files: string[]
  /** includes that name a local file that could not be read */
  unreadable: string[]
}

/** A file's text, or null when absent or unreadable. */
export type ReadFile = (path: string) => string | null

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
const REPO = /^[A-Za-z0-9_.-]+\/[A-Za-z0-9_.-]+$/

interface Found { names: Set<string>, includes: string[], configs: string[] }

/** The references and includes of one file's tokens (and of the code interpolated into its strings). */
export function references (tokens: Token[], found: Found = { names: new Set(), includes: [], configs: [] }): Found {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!
    const prev = tokens[i - 1]
    const afterDot = prev?.kind === 'punct' && prev.text === '.'
    if (t.kind === 'string' && t.interpolated) {
      for (const code of interpolations(t.text)) references(tokenize(code), found)
      continue
    }
    if (t.kind !== 'ident' || afterDot) continue
    const next = tokens[i + 1]
    if (t.text === 'secrets' && next?.kind === 'punct') {
      const after = tokens[i + 2]
      if (next.text === '.' && after?.kind === 'ident' && NAME.test(after.text)) found.names.add(after.text)
      if (next.text === '[' && after?.kind === 'string' && NAME.test(after.text)) found.names.add(after.text)
    } else if (t.text === 'secret') {
      // `secret 'A'`, `secret('A')`, and in configs `secret = 'A'` or `secret = ['A', 'B']`
      let j = i + 1
      if (tokens[j]?.kind === 'punct' && (tokens[j]!.text === '(' || tokens[j]!.text === '=')) j++
      if (tokens[j]?.kind === 'punct' && tokens[j]!.text === '[') j++
      for (; tokens[j]?.kind === 'string'; j += 2) {
        if (NAME.test(tokens[j]!.text)) found.names.add(tokens[j]!.text)
        if (!(tokens[j + 1]?.kind === 'punct' && tokens[j + 1]!.text === ',')) break
      }
    } else if (t.text === 'include' && next?.kind === 'punct' && next.text === '{') {
      let j = i + 2
      while (j < tokens.length && !(tokens[j]!.kind === 'punct' && tokens[j]!.text === '}')) j++
      if (tokens[j + 1]?.kind === 'ident' && tokens[j + 1]!.text === 'from' && tokens[j + 2]?.kind === 'string') found.includes.push(tokens[j + 2]!.text)
    } else if (t.text === 'includeConfig' && next?.kind === 'string') {
      found.configs.push(next.text)
    }
  }
  return found
}

/** Where an include points: path, path.nf or path/main.nf next to the including file; non-local includes: null. */
function includeCandidates (from: string, target: string): string[] {
  if (!target.startsWith('./') && !target.startsWith('../') && !isAbsolute(target)) return []
  const base = resolve(dirname(from), target)
  return base.endsWith('.nf') ? [base] : [`${base}.nf`, join(base, 'main.nf'), base]
}

export function scanPipeline (req: ScanRequest, read: ReadFile): ScanResult {
  const names = new Set<string>()
  const files: string[] = []
  const unreadable: string[] = []
  const seen = new Set<string>()

  const scanFile = (path: string, text: string, config: boolean): void => {
    files.push(path)
    const f = references(tokenize(text))
    for (const n of f.names) names.add(n)
    if (config) {
      for (const c of f.configs) visit([isAbsolute(c) ? c : resolve(dirname(path), c)], true, true)
    } else {
      for (const inc of f.includes) {
        const candidates = includeCandidates(path, inc)
        if (candidates.length > 0) visit(candidates, false, true)
      }
    }
  }
  /** Read the first candidate that exists; true when one did. */
  const visit = (candidates: string[], config: boolean, required: boolean): boolean => {
    for (const path of candidates) {
      if (seen.has(path)) return true
      const text = read(path)
      if (text === null) continue
      seen.add(path)
      scanFile(path, text, config)
      return true
    }
    if (required && candidates.length > 0) unreadable.push(candidates[0]!)
    return false
  }

  // The pipeline's own dir: the script's, or the asset copy of OWNER/REPO.
  let pipelineDir = req.launchDir
  let mainCandidates = [join(req.launchDir, 'main.nf')]
  if (req.script !== undefined) {
    const asPath = isAbsolute(req.script) ? req.script : resolve(req.launchDir, req.script)
    if (read(asPath) !== null || req.script.endsWith('.nf') || !REPO.test(req.script)) {
      pipelineDir = dirname(asPath)
      mainCandidates = [asPath, join(asPath, 'main.nf')]
    } else {
      pipelineDir = join(req.nxfHome, 'assets', req.script)
      const manifest = read(join(pipelineDir, 'nextflow.config'))
      const main = manifest === null ? null : /mainScript\s*=\s*['"]([^'"]+)['"]/.exec(manifest)?.[1]
      mainCandidates = [join(pipelineDir, main ?? 'main.nf')]
    }
  }
  const found = visit(mainCandidates, false, false)

  const configs = req.replaceConfig !== undefined
    ? [resolve(req.launchDir, req.replaceConfig)]
    : [...new Set([join(pipelineDir, 'nextflow.config'), join(req.launchDir, 'nextflow.config')]), ...(req.configs ?? []).map(c => resolve(req.launchDir, c))]
  for (const c of configs) visit([c], true, false)

  return { found, names: [...names].sort(), files, unreadable }
}
