/**
 * The first key that appears twice in the top-level object of a JSON text, or null. JSON.parse keeps the last
 * of duplicates silently; a signed document (a JWT's claims) with two values for one key means different
 * things to different readers (Neon's parser, serde, refuses it), so such a document is refused.
 *
 * A scanner of the text, not a parser: it assumes the text is valid JSON (JSON.parse has accepted it), tracks
 * nesting depth and strings (escapes included), and collects the strings that are keys at depth 1 (a string
 * followed by ':').
 */
export function duplicateTopLevelKey(text: string): string | null {
  const seen = new Set<string>()
  let depth = 0
  let i = 0
  const n = text.length
  while (i < n) {
    const ch = text[i]!
    if (ch === '{' || ch === '[') depth++
    else if (ch === '}' || ch === ']') depth--
    else if (ch === '"') {
      const start = i
      i++
      while (i < n && text[i] !== '"') i += text[i] === '\\' ? 2 : 1
      const literal = text.slice(start, i + 1)
      let j = i + 1
      while (j < n && (text[j] === ' ' || text[j] === '\t' || text[j] === '\n' || text[j] === '\r')) j++
      if (depth === 1 && text[j] === ':') {
        const key = JSON.parse(literal) as string
        if (seen.has(key)) return key
        seen.add(key)
      }
    }
    i++
  }
  return null
}
