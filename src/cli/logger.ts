/**
 * Structured logs for long-running commands (`serve`): one JSON object per line on stderr
 * (`{"time", "level", "msg", ...fields}`), or a readable line on a terminal. `PAGESERVER_LOG` sets the
 * minimum level (debug, info, warn, error; default info).
 *
 * Bound: stderr is a pipe more often than not (a log shipper, `| tee`), and Node queues what a pipe does not
 * take in the process. A reader that stops must not grow the server's memory by its log rate (a compute
 * retrying a failing GetPage logs a line per request): above `queuedBytesMax` of text queued on the stream,
 * lines are dropped and counted, and the next line written once the stream has taken its queue says how many.
 */
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const
export type LogLevel = keyof typeof LEVELS

export type LogFn = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void

/** Log text queued on stderr (not yet taken by its reader) beyond which lines are dropped. */
export const LOG_QUEUED_BYTES_MAX = 4 * 1024 * 1024

export interface LoggerOptions {
  json?: boolean
  minLevel?: string
  /** Where lines go (default process.stderr). */
  stream?: NodeJS.WritableStream & { readonly writableLength: number; readonly isTTY?: boolean }
  queuedBytesMax?: number
}

export function createLogger(opts: LoggerOptions = {}): LogFn {
  const min = LEVELS[(opts.minLevel as LogLevel) ?? 'info'] ?? LEVELS.info
  const out = opts.stream ?? process.stderr
  const json = opts.json ?? !out.isTTY
  const queuedMax = opts.queuedBytesMax ?? LOG_QUEUED_BYTES_MAX
  let dropped = 0
  const line = (level: LogLevel, message: string, fields: Record<string, unknown>): string => {
    const time = new Date().toISOString()
    if (json) return JSON.stringify({ time, level, msg: message, ...fields }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n'
    const extra = Object.entries(fields)
      .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x)) : String(v)}`)
      .join(' ')
    return `${time} ${level.toUpperCase().padEnd(5)} ${message}${extra ? '  ' + extra : ''}\n`
  }
  return (level, message, fields = {}) => {
    if (LEVELS[level] < min) return
    if (out.writableLength > queuedMax) {
      dropped++
      return
    }
    if (dropped > 0) {
      out.write(line('warn', 'log lines dropped: the log output was not being read', { dropped }))
      dropped = 0
    }
    out.write(line(level, message, fields))
  }
}
