/** Quoting for commands we print for a user to paste into a POSIX shell (hints, next steps). */

/** Quotes a word for a POSIX shell unless it needs none. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_/.:=@%+,-]+$/.test(s) ? s : `'${s.replaceAll("'", `'\\''`)}'`
}
