/**
 * WorkerStderr: the stderr of one redo worker child process (WorkerProcess, worker-process.ts), read line by
 * line, logged, and kept in part for the error messages of the requests it fails.
 *
 * Invariants:
 * - Lines are cut at STDERR_LINE_MAX_BYTES (the rest of a longer line is dropped up to its newline): a worker
 *   must not fill our memory through its stderr.
 * - The first STDERR_HEAD_LINES and the last STDERR_TAIL_LINES lines are kept; the lines between are only
 *   counted (and logged).
 * - The first `pageserver-redo-error:` line (redo-error-line.ts) is kept as `redoError`: the worker marks the
 *   oldest request's failure as a deterministic redo error with it before it exits.
 *
 * Why apart from the process: stderr is not on the request path, and its line splitting and memory are a
 * concern of their own; the process only feeds it chunks and asks it for lines when a request fails.
 */
import { parseRedoErrorLine, type RedoErrorReport } from './redo-error-line.js'
import type { WalRedoLogger } from './worker-process.js'

/** Bytes of one stderr line kept; the rest of a longer line is dropped (a worker must not fill our memory). */
export const STDERR_LINE_MAX_BYTES = 16 * 1024
/** Last stderr lines remembered for error messages. */
export const STDERR_TAIL_LINES = 10
/**
 * First stderr lines remembered too: a dying process often names the cause first and then prints a long
 * stack (V8: "FATAL ERROR: ... JavaScript heap out of memory" followed by 20 native frames).
 */
export const STDERR_HEAD_LINES = 10

export class WorkerStderr {
  private readonly head: string[] = []
  private readonly tail: string[] = []
  private lineCount = 0
  private partial = ''
  private dropping = false
  /** The worker's redo error report, from the first line that is one; null: none (yet). */
  redoError: RedoErrorReport | null = null

  /** `log`: the worker's logger (it names the worker and its pid). */
  constructor(private readonly log: WalRedoLogger) {}

  /** The first and the last lines (oldest first; "..." where lines were skipped). */
  lines(): string[] {
    const skipped = this.lineCount - this.head.length - this.tail.length
    return [...this.head, ...(skipped > 0 ? [`... (${skipped} lines)`] : []), ...this.tail]
  }

  /** The line most likely to say why the worker died: the last that names an error, else the last. */
  cause(): string | undefined {
    const lines = [...this.head, ...this.tail]
    for (let i = lines.length - 1; i >= 0; i--) if (/error|fatal|panic|abort|out of memory/i.test(lines[i]!)) return lines[i]
    return lines[lines.length - 1]
  }

  /** A chunk read from the child's stderr. */
  write(chunk: Buffer): void {
    let text = chunk.toString('utf8')
    for (;;) {
      const nl = text.indexOf('\n')
      const piece = nl < 0 ? text : text.slice(0, nl)
      if (!this.dropping) {
        this.partial += piece
        if (Buffer.byteLength(this.partial) > STDERR_LINE_MAX_BYTES) {
          this.partial = this.partial.slice(0, STDERR_LINE_MAX_BYTES) + ' [cut]'
          this.emitLine(this.partial)
          this.partial = ''
          this.dropping = true
        }
      }
      if (nl < 0) return
      if (!this.dropping) this.emitLine(this.partial)
      this.partial = ''
      this.dropping = false
      text = text.slice(nl + 1)
    }
  }

  /** Emits the last line, not ended by a newline (at the end of the stream, or when the worker is gone). */
  flushPartial(): void {
    if (this.partial !== '' && !this.dropping) this.emitLine(this.partial)
    this.partial = ''
    this.dropping = false
  }

  private emitLine(line: string): void {
    const report = this.redoError === null ? parseRedoErrorLine(line) : null
    if (report !== null) this.redoError = report
    this.lineCount++
    if (this.head.length < STDERR_HEAD_LINES) this.head.push(line)
    else {
      this.tail.push(line)
      if (this.tail.length > STDERR_TAIL_LINES) this.tail.shift()
    }
    this.log(report !== null ? 'warn' : 'info', 'redo worker stderr', { line })
  }
}
