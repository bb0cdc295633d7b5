// "Did you mean": the closest known word to one the user typed, by edit distance. Pure. A suggestion names only our
// own commands and options, never echoes what was typed (a value typed in the wrong place must not reach stderr).

/** Levenshtein distance, with a transposition counted as one edit (Damerau, restricted). */
export function editDistance (a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0]![j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1)
      d[i]![j] = v
    }
  }
  return d[a.length]![b.length]!
}

/** The known word nearest to `typed`, if it is close enough to be what was meant (a third of its length, at least 1). */
export function closest (typed: string, known: readonly string[]): string | undefined {
  let best: string | undefined
  let bestD = Infinity
  for (const k of known) {
    const dist = editDistance(typed, k)
    if (dist < bestD) { best = k; bestD = dist }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(typed.length / 3)) ? best : undefined
}
