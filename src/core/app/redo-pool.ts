/**
 * The WAL redo worker pool as the offline redo tools (`redo verify`, `redo replay`) use it: settings taken
 * from the page server config, one WalRedoManager per hintBitsLogged value, all closed together.
 *
 * Why a set of managers: our worker learns hintBitsLogged from its command line (--hint-bits-logged), and
 * verification may only learn it part-way through the WAL (see core/redo/verify-wal.ts). A custom worker
 * command (wal_redo_command, e.g. Neon's `postgres --wal-redo`) is used as given for both values.
 */
import type { PageserverConfig } from '../config/index.js'
import { WalRedoManager, type WalRedoLogger } from '../walredo/manager.js'
import { defaultWorkerCommand } from '../walredo/worker-command.js'
import type { RedoFn } from '../redo/verify.js'

/**
 * Requests pipelined to one worker. A worker redoes one request at a time; a few queued behind it hide the
 * pipe round trip (encode, write, wake-up, read) so the worker never waits for the next request.
 */
export const REDO_IN_FLIGHT_PER_WORKER_DEFAULT = 8

export interface RedoPoolSettings {
  /** Custom worker argv, or null for our built-in worker. */
  command: readonly string[] | null
  workers: number
  requestTimeoutMs: number
  idleTimeoutMs: number
  inFlightPerWorker: number
}

export function redoPoolSettings(cfg: PageserverConfig): RedoPoolSettings {
  return {
    command: cfg.walRedoCommand ?? null,
    workers: cfg.walRedoWorkers,
    requestTimeoutMs: cfg.walRedoTimeoutMs,
    idleTimeoutMs: cfg.walRedoIdleTimeoutMs,
    inFlightPerWorker: REDO_IN_FLIGHT_PER_WORKER_DEFAULT,
  }
}

/** Requests the pool can hold at once (running and pipelined): the useful concurrency of a caller. */
export function poolCapacity(s: RedoPoolSettings): number {
  return s.workers * s.inFlightPerWorker
}

export class RedoPools {
  private readonly managers = new Map<boolean, WalRedoManager>()

  constructor(
    private readonly settings: RedoPoolSettings,
    private readonly logger?: WalRedoLogger,
  ) {}

  manager(hintBitsLogged: boolean): WalRedoManager {
    let m = this.managers.get(hintBitsLogged)
    if (m === undefined) {
      const s = this.settings
      m = new WalRedoManager({
        command: s.command ?? defaultWorkerCommand({ hintBitsLogged }),
        poolSize: s.workers,
        requestTimeoutMs: s.requestTimeoutMs,
        idleTimeoutMs: s.idleTimeoutMs,
        // Callers bound their own concurrency to poolCapacity(); the queue only absorbs retries and bursts.
        maxQueued: poolCapacity(s) * 2,
        maxInFlightPerWorker: s.inFlightPerWorker,
        ...(this.logger === undefined ? {} : { logger: this.logger }),
        slruInProcess: s.command !== null,
      })
      this.managers.set(hintBitsLogged, m)
    }
    return m
  }

  /** A RedoFn backed by the pool for this setting. */
  redoFn(hintBitsLogged: boolean, signal?: AbortSignal): RedoFn {
    const m = this.manager(hintBitsLogged)
    return (tag, base, records) => m.redo({ tag, base, records }, signal === undefined ? {} : { signal })
  }

  /** Stops every worker of every pool and waits for them to exit. */
  async close(): Promise<void> {
    await Promise.all([...this.managers.values()].map((m) => m.close()))
  }
}
