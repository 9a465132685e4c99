/**
 * Standard output for commands that stream many lines (`wal dump`, `wal receive`, `layer dump`), or bytes
 * (`getpage`'s raw page when stdout is not a terminal).
 *
 * A reader that goes away early (`| head`) must end the output quietly, not crash with EPIPE: the sink
 * remembers that stdout closed and drops later writes, and the command checks `closed` to stop its work.
 * `drained()` gives back-pressure (a slow reader slows the command instead of filling memory) without a way
 * to hang on a pipe that closed. Errors that end a stream are reported in one place: as the last JSON line
 * under `--json`, else as `Error:`/`Hint:` on stderr, and both streams are flushed before the exit code is
 * returned, because exiting drops what a pipe has not taken yet.
 */
import type { UserFacingError } from './errors.js'

export class StdoutSink {
  private closedByReader = false
  private readonly onError = (e: NodeJS.ErrnoException): void => {
    if (e.code === 'EPIPE') this.closedByReader = true
  }

  constructor(private readonly stream: NodeJS.WriteStream = process.stdout) {
    stream.on('error', this.onError)
  }

  /** True once the reader has gone away; later writes are dropped. */
  get closed(): boolean {
    return this.closedByReader
  }

  /**
   * Writes text, or bytes as they are (no encoding: `getpage` writes a raw page), unless the reader went away;
   * an EPIPE ends the output, other errors propagate.
   */
  write(data: string | Uint8Array): void {
    if (this.closedByReader || data.length === 0) return
    try {
      this.stream.write(data)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EPIPE') this.closedByReader = true
      else throw e
    }
  }

  /** One JSON value per line. */
  writeJsonLine(value: unknown): void {
    this.write(JSON.stringify(value, jsonReplacer) + '\n')
  }

  /** Resolves once the stream wants more (or is gone). */
  async drained(): Promise<void> {
    await drained(this.stream)
  }

  /** Resolves once everything written so far has been handed to the OS (or the stream failed or closed). */
  async flush(): Promise<void> {
    await flushed(this.stream)
  }

  /** Reports the error that ended the stream and returns the exit code to use; see the module comment. */
  async reportError(e: UserFacingError, json: boolean, debug: boolean): Promise<number> {
    if (json) {
      this.writeJsonLine({ error: { code: e.code, message: e.message, hint: e.hint ?? null } })
    } else {
      process.stderr.write(`Error: ${e.message}\n`)
      if (e.hint) process.stderr.write(`Hint: ${e.hint}\n`)
      if (e.stack && debug) process.stderr.write(`${e.stack}\n`)
    }
    await Promise.all([flushed(this.stream), flushed(process.stderr)])
    return e.exitCode
  }

  /** Detaches the error listener; call once the command is done. */
  dispose(): void {
    this.stream.off('error', this.onError)
  }
}

/** bigint values (LSNs are branded bigints) never reach JSON raw; commands format LSNs as "X/X" themselves. */
export function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value
}

async function drained(stream: NodeJS.WriteStream): Promise<void> {
  if (!stream.writableNeedDrain || stream.destroyed) return
  await new Promise<void>((resolve) => {
    const done = (): void => {
      stream.off('drain', done)
      stream.off('error', done)
      stream.off('close', done)
      resolve()
    }
    stream.on('drain', done)
    stream.on('error', done)
    stream.on('close', done)
  })
}

/** Resolves when everything written so far has been handed to the OS (or the stream failed). */
async function flushed(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.destroyed) return
  await new Promise<void>((resolve) => {
    stream.write('', () => resolve())
  })
}
