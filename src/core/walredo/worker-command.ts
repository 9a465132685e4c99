/**
 * The default command line of a redo worker: our own TypeScript engine in a separate Node process.
 *
 * Installed CLI (this module compiled into dist/): `[node, --max-old-space-size=N, <dist>/core/walredo/
 * worker-main.js, ...flags]`, with `node` = the running Node binary (process.execPath), so the worker runs
 * the same Node and the same build as the server.
 *
 * Running from source (vitest, tsx: this module is a .ts file): the sibling worker-main.ts under tsx's loader
 * (`--import <absolute URL of tsx>`; tsx is a dev dependency, present exactly when sources are). The loader is
 * named by absolute URL so the worker's cwd and environment do not matter.
 *
 * The heap limit makes a memory blow-up in redo kill the worker (V8 aborts at the limit), not the server.
 * It bounds the JavaScript heap; Buffer memory is outside it, which is why the protocol bounds request bytes.
 */
import { createRequire } from 'node:module'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { UsageError } from '../lib/errors.js'

/**
 * JavaScript heap of one worker, in MiB. A request holds at most REQUEST_RECORD_BYTES_MAX (128 MiB) of records
 * as Buffers outside this heap; the engine's own objects per page are small, so 512 MiB leaves a wide margin
 * while a pool of 4 workers cannot take more than ~2.5 GiB.
 */
export const WORKER_HEAP_MAX_MB = 512
/** The worker flag that turns off its record CRC check. */
export const SKIP_RECORD_CRC_FLAG = '--skip-record-crc'
const WORKER_HEAP_MIN_MB = 16

export interface WorkerCommandOptions {
  /** Data checksums or wal_log_hints on the primary (passed to the engine). */
  hintBitsLogged: boolean
  /**
   * Recompute every record's CRC in the worker (default true). The page server's own pools turn it off: their
   * records come from CRC-checked layer files or from the WAL decoder, which verified them (--skip-record-crc).
   */
  checkRecordCrc?: boolean
  heapMaxMb?: number
  /** The Node binary; default: the one running now. */
  nodePath?: string
}

/** The argv of our worker (first element: the executable). */
export function defaultWorkerCommand(opts: WorkerCommandOptions): string[] {
  const heapMaxMb = opts.heapMaxMb ?? WORKER_HEAP_MAX_MB
  if (!Number.isInteger(heapMaxMb) || heapMaxMb < WORKER_HEAP_MIN_MB) {
    throw new UsageError('WALREDO_BAD_HEAP_LIMIT', `the redo worker heap limit ${heapMaxMb} MiB is too small`, {
      hint: `Give the redo worker at least ${WORKER_HEAP_MIN_MB} MiB.`,
    })
  }
  const node = opts.nodePath ?? process.execPath
  const flags = [...(opts.hintBitsLogged ? ['--hint-bits-logged'] : []), ...(opts.checkRecordCrc === false ? [SKIP_RECORD_CRC_FLAG] : [])]
  const heap = `--max-old-space-size=${heapMaxMb}`
  if (import.meta.url.endsWith('.ts')) {
    const entry = fileURLToPath(new URL('./worker-main.ts', import.meta.url))
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href
    return [node, heap, '--import', tsx, entry, ...flags]
  }
  const entry = fileURLToPath(new URL('./worker-main.js', import.meta.url))
  return [node, heap, entry, ...flags]
}
