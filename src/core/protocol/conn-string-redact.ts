/**
 * Connection strings for display: the same string with any password replaced, so it can be printed,
 * logged and returned as JSON. Works on both forms (key=value and postgresql:// URLs) without parsing
 * them fully, so even a malformed string never leaks its password.
 */
export const REDACTED_PASSWORD = '<redacted>'

export function redactConnString(text: string): string {
  const t = text.trim()
  if (/^postgres(ql)?:\/\//i.test(t)) {
    // postgresql://user:password@host/... and ?password=... query parameters
    return t.replace(/^(postgres(?:ql)?:\/\/[^:@/?#]*):[^@/?#]*@/i, `$1:${REDACTED_PASSWORD}@`).replace(/([?&]password=)[^&#]*/gi, `$1${REDACTED_PASSWORD}`)
  }
  // key=value form: password='quoted \' value' or password=bare
  return t.replace(/(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S*)/gi, `$1${REDACTED_PASSWORD}`)
}
