/**
 * Entry of our own redo worker process: `node [--max-old-space-size=N] dist/core/walredo/worker-main.js
 * [--hint-bits-logged]`.
 *
 * Speaks the walredo pipe protocol on stdin/stdout (worker-loop.ts) and redoes pages with the TypeScript
 * engine (src/core/redo/engine.ts). Exits 0 on EOF of stdin, which is also how it notices that the page
 * server died. On any error it writes one `pageserver-redo-error: {json}` line to stderr and exits 1; the
 * manager reads that line and rethrows the typed error without retrying (the failure is deterministic).
 *
 * This file is a process entry, like bin/run.js: it is the one module under core/ that reads argv, writes to
 * stderr and ends the process. Nothing imports it.
 */
import { UsageError } from '../lib/errors.js'
import { redoBlock } from '../redo/engine.js'
import { formatRedoErrorLine } from './redo-error-line.js'
import { runWorker } from './worker-loop.js'

/** Exit code after a reported error (the manager does not interpret it beyond "non-zero"). */
const EXIT_REDO_ERROR = 1

function fail(err: unknown): void {
  process.stderr.write(formatRedoErrorLine(err) + '\n', () => process.exit(EXIT_REDO_ERROR))
}

function parseArgs(argv: readonly string[]): { hintBitsLogged: boolean } {
  let hintBitsLogged = false
  for (const arg of argv) {
    if (arg === '--hint-bits-logged') hintBitsLogged = true
    else {
      throw new UsageError('WALREDO_WORKER_BAD_ARG', `the redo worker does not know the argument "${arg}"`, {
        hint: 'The worker accepts only --hint-bits-logged; check the wal redo worker command in the config.',
      })
    }
  }
  return { hintBitsLogged }
}

// A closed stdout means the page server is gone: nobody will read a reply, so leave quietly.
process.stdout.on('error', () => process.exit(EXIT_REDO_ERROR))

try {
  const opts = parseArgs(process.argv.slice(2))
  runWorker(process.stdin, process.stdout, redoBlock, opts).then(() => {
    process.exitCode = 0
  }, fail)
} catch (err) {
  fail(err)
}
