/**
 * SLRU pages redone in the page server's own process with the built-in engine, for a pool whose workers run
 * another program (`slruInProcess`, pool-options.ts; WalRedoManager, manager.ts).
 *
 * Why: SLRU pages (CLOG, MultiXact) travel to our workers under pseudo-forks of our own (buffer-tag-codec.ts);
 * Neon's `postgres --wal-redo` knows relation forks only, and Neon's page server applies these changes itself,
 * as this does. Why it is safe without a process around it: SLRU redo sets status bits and copies member
 * lists, no page is parsed, so there is nothing for isolation to contain; a long chain blocks this thread for
 * about a microsecond per record. The engine is loaded on the first such page, never by a pool that does not
 * use it. Each page is counted as a request like those sent to a worker.
 */
import type { PoolCounters } from './pool-stats.js'
import type { RedoRequestInput } from './protocol.js'

export class InProcessSlruRedo {
  /** The built-in engine, loaded on the first SLRU page redone here. */
  private engine: Promise<typeof import('../redo/engine.js')> | null = null

  constructor(
    private readonly counters: PoolCounters,
    /** As the pool's workers do (no --skip-record-crc in their command). */
    private readonly checkRecordCrc: boolean,
  ) {}

  /** The page of `req.tag` after `req.records` on top of `req.base`, redone here. */
  async redo(req: RedoRequestInput): Promise<Buffer> {
    this.counters.countRequest()
    try {
      const { redoBlock } = await (this.engine ??= import('../redo/engine.js'))
      const page = redoBlock(req.tag, req.base, req.records, { hintBitsLogged: false, checkRecordCrc: this.checkRecordCrc })
      this.counters.countOutcome(true)
      return page
    } catch (err) {
      this.counters.countOutcome(false)
      throw err
    }
  }
}
