/**
 * Structured logs for long-running commands (`serve`): one JSON object per line on stderr
 * (`{"time", "level", "msg", ...fields}`), or a readable line on a terminal. `PAGESERVER_LOG` sets the
 * minimum level (debug, info, warn, error; default info).
 */
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const
export type LogLevel = keyof typeof LEVELS

export type LogFn = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void

export function createLogger(opts: { json?: boolean; minLevel?: string } = {}): LogFn {
  const min = LEVELS[(opts.minLevel as LogLevel) ?? 'info'] ?? LEVELS.info
  const json = opts.json ?? !process.stderr.isTTY
  return (level, message, fields = {}) => {
    if (LEVELS[level] < min) return
    const time = new Date().toISOString()
    if (json) {
      process.stderr.write(JSON.stringify({ time, level, msg: message, ...fields }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n')
    } else {
      const extra = Object.entries(fields)
        .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x)) : String(v)}`)
        .join(' ')
      process.stderr.write(`${time} ${level.toUpperCase().padEnd(5)} ${message}${extra ? '  ' + extra : ''}\n`)
    }
  }
}
