/**
 * Entry of our own redo worker process: `node [--max-old-space-size=N] dist/core/walredo/worker-main.js
 * [--hint-bits-logged] [--skip-record-crc]`.
 *
 * Speaks the walredo pipe protocol on stdin/stdout (worker-loop.ts, blocking reads and gathered writes on
 * file descriptors 0 and 1) and redoes pages with the TypeScript engine (src/core/redo/engine.ts). Exits 0
 * on EOF of stdin, which is also how it notices that the page server died. A page the engine cannot redo is
 * answered with an error page when the environment gives PAGESERVER_REDO_ERROR_MARK (redo-error-page.ts; the
 * manager always does), and the worker goes on. Any other error (a protocol violation, or a redo error
 * without a mark) makes it write one `pageserver-redo-error: {json}` line to stderr and exit 1; the manager
 * reads that line and rethrows the typed error without retrying (the failure is deterministic).
 *
 * Flags:
 *   --hint-bits-logged  data checksums or wal_log_hints on the primary (RedoOptions.hintBitsLogged)
 *   --skip-record-crc   do not recompute each record's CRC-32C: for records that come from CRC-checked layer
 *                       files or from the WAL decoder, which verified them (the page server's own pools).
 *                       Without it every record is checked, as `redo replay` of WAL files wants.
 *
 * This file is a process entry, like bin/run.js: it is the one module under core/ that reads argv and its
 * environment, writes to stderr and ends the process. Nothing imports it.
 */
import { UsageError } from '../lib/errors.js'
import { redoBlock } from '../redo/engine.js'
import { formatRedoErrorLine } from './redo-error-line.js'
import { redoErrorMarkFromEnv } from './redo-error-page.js'
import { runWorkerOnFds } from './worker-loop.js'

/** Exit code after a reported error (the manager does not interpret it beyond "non-zero"). */
const EXIT_REDO_ERROR = 1
const STDIN_FD = 0
const STDOUT_FD = 1

function fail(err: unknown): void {
  // A closed stdout means the page server is gone: nobody will read a reply or a report, so leave quietly.
  const code = (err as NodeJS.ErrnoException | null)?.code
  if (code === 'EPIPE' || code === 'ECONNRESET') process.exit(EXIT_REDO_ERROR)
  process.stderr.write(formatRedoErrorLine(err) + '\n', () => process.exit(EXIT_REDO_ERROR))
}

function parseArgs(argv: readonly string[]): { hintBitsLogged: boolean; checkRecordCrc: boolean } {
  let hintBitsLogged = false
  let checkRecordCrc = true
  for (const arg of argv) {
    if (arg === '--hint-bits-logged') hintBitsLogged = true
    else if (arg === '--skip-record-crc') checkRecordCrc = false
    else {
      throw new UsageError('WALREDO_WORKER_BAD_ARG', `the redo worker does not know the argument "${arg}"`, {
        hint: 'The worker accepts only --hint-bits-logged and --skip-record-crc; check the wal redo worker command in the config.',
      })
    }
  }
  return { hintBitsLogged, checkRecordCrc }
}

try {
  runWorkerOnFds(STDIN_FD, STDOUT_FD, redoBlock, { ...parseArgs(process.argv.slice(2)), errorMark: redoErrorMarkFromEnv(process.env) })
  process.exitCode = 0
} catch (err) {
  fail(err)
}
