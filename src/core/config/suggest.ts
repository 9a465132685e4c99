/**
 * "Did you mean ...?" for unknown config keys: the known key with the smallest edit distance, if it is close
 * enough to be a plausible typo (at most a third of the key's length, and at least 2 edits allowed).
 * Keys are compared ignoring case and treating "-" like "_" (`checkpoint-distance` finds
 * `checkpoint_distance`).
 */

/** Unknown keys longer than this are not compared (the distance table is quadratic in length). */
const SUGGEST_KEY_LENGTH_MAX = 128

function normalize(key: string): string {
  return key.toLowerCase().replaceAll('-', '_')
}

/** Levenshtein distance with transpositions counted as one edit (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1
  const cols = b.length + 1
  const d: number[] = new Array<number>(rows * cols).fill(0)
  for (let i = 0; i < rows; i++) d[i * cols] = i
  for (let j = 0; j < cols; j++) d[j] = j
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let v = Math.min(d[(i - 1) * cols + j]! + 1, d[i * cols + j - 1]! + 1, d[(i - 1) * cols + j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[(i - 2) * cols + j - 2]! + 1)
      d[i * cols + j] = v
    }
  }
  return d[rows * cols - 1]!
}

/** The closest known key, or null when none is close. */
export function closestKey(unknown: string, known: readonly string[]): string | null {
  if (unknown.length > SUGGEST_KEY_LENGTH_MAX) return null
  const u = normalize(unknown)
  let best: string | null = null
  let bestDistance = Infinity
  for (const k of known) {
    const n = normalize(k)
    const dist = n === u ? 0 : editDistance(u, n)
    if (dist < bestDistance) {
      best = k
      bestDistance = dist
    }
  }
  const allowed = Math.max(2, Math.floor(u.length / 3))
  if (best !== null && bestDistance <= allowed) return best
  // Failing a close spelling, a unique known key that contains the unknown one (or the reverse) is a good
  // guess: `distance` -> `checkpoint_distance` (when only one key contains it).
  const containing = known.filter((k) => u.length >= 4 && (normalize(k).includes(u) || u.includes(normalize(k))))
  return containing.length === 1 ? containing[0]! : null
}
