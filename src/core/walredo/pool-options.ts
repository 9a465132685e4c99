/**
 * The options of a redo worker pool (WalRedoManager, manager.ts), the limits they are checked against, and
 * their defaults.
 *
 * Why a named upper bound on each: a typo in pageserver.toml (or a -c override) must fail at startup with a
 * UsageError naming the setting, not fork a thousand processes or queue without end. The options are
 * checked and completed once, when the pool is made (resolvePoolOptions), so the request path reads plain
 * fields and never a default.
 */
import { UsageError } from '../lib/errors.js'
import { TIMER_DELAY_MAX_MS } from '../lib/units.js'
import { CHAIN_STEP_RECORDS } from './chain-steps.js'
import type { RedoProcessBudget } from './process-budget.js'
import type { WalRedoLogger } from './worker-process.js'

/** Upper bounds on the configuration, so a typo cannot fork a thousand processes. */
export const POOL_SIZE_MAX = 64
export const IN_FLIGHT_PER_WORKER_MAX = 64
export const QUEUED_MAX = 100_000
/** Default grace between EOF and SIGKILL when stopping a worker. */
export const STOP_GRACE_MS_DEFAULT = 1000
/** The whole environment of a worker unless the config adds to it: a fixed PATH (core never reads ours). */
export const DEFAULT_WORKER_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'

export interface WalRedoManagerOptions {
  /** argv of a worker; see defaultWorkerCommand() in worker-command.ts. */
  command: readonly string[]
  /** Added to the worker's environment ({PATH} by default and nothing else). */
  env?: Readonly<Record<string, string>>
  cwd?: string
  poolSize: number
  /** wal_redo_timeout: the deadline of one attempt, and of the wait for a free slot. */
  requestTimeoutMs: number
  idleTimeoutMs: number
  maxQueued: number
  maxInFlightPerWorker: number
  logger?: WalRedoLogger
  stopGraceMs?: number
  /** Cut the images of other pages out of records before sending them (record-trim.ts); default true. */
  trimImages?: boolean
  /** Records per request before a chain is redone in steps; default CHAIN_STEP_RECORDS (tests lower it). */
  chainStepRecords?: number
  /** The cap on worker processes this pool shares with others (the server's); none: only `poolSize`. */
  budget?: RedoProcessBudget
  /**
   * Redo SLRU pages (pseudo-forks, buffer-tag-codec.ts) in this process with the built-in engine instead of
   * sending them to the workers. For a custom worker command: the pseudo-forks are our extension of the
   * protocol, and Neon's `postgres --wal-redo` knows relation forks only (Neon's page server applies CLOG
   * and MultiXact changes itself, as this does). Default false.
   */
  slruInProcess?: boolean
}

export interface RedoCallOptions {
  signal?: AbortSignal
}

/** The options as the pool keeps them: checked, defaults filled in (the budget is kept apart). */
export type ResolvedPoolOptions = Required<Omit<WalRedoManagerOptions, 'cwd' | 'budget'>> & { cwd: string | undefined }

const noopLogger: WalRedoLogger = () => {}

/** Checks `options` against the limits (UsageError WALREDO_BAD_CONFIG) and fills in the defaults. */
export function resolvePoolOptions(options: WalRedoManagerOptions): ResolvedPoolOptions {
  if (options.command.length === 0 || options.command.some((a) => typeof a !== 'string' || a === '')) {
    throw new UsageError('WALREDO_BAD_CONFIG', 'the wal redo worker command is empty', {
      hint: 'Leave the worker command unset to use the built-in worker, or give the executable and its arguments.',
    })
  }
  checkInt('wal_redo_pool_size', options.poolSize, 1, POOL_SIZE_MAX)
  checkInt('wal_redo_max_in_flight', options.maxInFlightPerWorker, 1, IN_FLIGHT_PER_WORKER_MAX)
  checkInt('wal_redo_max_queued', options.maxQueued, 0, QUEUED_MAX)
  checkInt('wal_redo_timeout (ms)', options.requestTimeoutMs, 1, TIMER_DELAY_MAX_MS)
  checkInt('wal_redo_idle_timeout (ms)', options.idleTimeoutMs, 1, TIMER_DELAY_MAX_MS)
  checkInt('wal redo stop grace (ms)', options.stopGraceMs ?? STOP_GRACE_MS_DEFAULT, 0, TIMER_DELAY_MAX_MS)
  checkInt('wal redo chain step (records)', options.chainStepRecords ?? CHAIN_STEP_RECORDS, 1, CHAIN_STEP_RECORDS)
  return {
    command: [...options.command],
    env: options.env ?? {},
    cwd: options.cwd,
    poolSize: options.poolSize,
    requestTimeoutMs: options.requestTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs,
    maxQueued: options.maxQueued,
    maxInFlightPerWorker: options.maxInFlightPerWorker,
    logger: options.logger ?? noopLogger,
    stopGraceMs: options.stopGraceMs ?? STOP_GRACE_MS_DEFAULT,
    trimImages: options.trimImages ?? true,
    chainStepRecords: options.chainStepRecords ?? CHAIN_STEP_RECORDS,
    slruInProcess: options.slruInProcess ?? false,
  }
}

function checkInt(name: string, v: number, min: number, max: number): void {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new UsageError('WALREDO_BAD_CONFIG', `${name} is ${v}, it must be an integer from ${min} to ${max}`, {
      hint: `Fix ${name} in pageserver.toml (or the -c override).`,
    })
  }
}
