/**
 * The replication-slot housekeeping of a running `serve`, in the background (it never delays the start or
 * holds up the stop beyond STOP_WAIT_MS):
 * - at the start, the slots of imports that died are dropped (app/import-slots.ts); those that cannot be
 *   dropped yet (their primary down, say) are tried again every `retryMs` from the server's tick, said as a
 *   warning the first time and at debug after;
 * - then, once, on each primary a served timeline streams from, the pageserver_* slots that no timeline of
 *   this workdir owns are logged as warnings: each keeps WAL on that primary until someone drops it. Failures
 *   to look are logged at debug level.
 */
import type { Repository } from '../repository/repository.js'
import type { AppContext } from './context.js'
import { readImportSlots, type ImportSlotRecord } from './import-slot-records.js'
import { sweepImportSlots } from './import-slots.js'
import { listSlots } from './slot-inventory.js'
import { sourceConnection } from './source-password.js'
import { stripPassword } from '../protocol/conn-string-strip.js'
import { shellWord } from '../lib/shell-word.js'

/** How often a running server tries again to drop the slots of dead imports it could not drop at start. */
export const IMPORT_SLOT_RETRY_MS = 5 * 60_000
/** How long a stop waits for a check under way to notice it (its connections are aborted). */
const STOP_WAIT_MS = 2_000

export class ServerSlotChecks {
  /** The check under way (or the last one); each starts after the one before. */
  private running: Promise<void> = Promise.resolve()
  /** When to try again the slots of dead imports that could not be dropped, or null. */
  private retryAtMs: number | null = null
  private readonly abort = new AbortController()

  constructor(
    private readonly ctx: AppContext,
    private readonly repo: Repository,
    /** The connection strings of the primaries the served timelines stream from, asked when needed. */
    private readonly walSources: () => Iterable<string>,
    private readonly retryMs: number = IMPORT_SLOT_RETRY_MS,
  ) {}

  /** The checks of the start; `importSlots` read before the API could start imports of its own. */
  start(importSlots: Awaited<ReturnType<typeof readImportSlots>>): void {
    this.running = (async () => {
      for (const u of importSlots.unreadable) {
        this.ctx.log?.('warn', 'unreadable record of an import\'s replication slot', { file: u.file, reason: u.reason, hint: 'Look at it, drop the slot it names with `pageserver slot drop` if it is still there, and remove the file.' })
      }
      await this.sweepImportSlotsNow(importSlots.records, 'warn')
      await this.warnOrphanSlots()
    })()
  }

  /** From the server's tick: the retry, when it is due. */
  tick(): void {
    if (this.retryAtMs === null || Date.now() < this.retryAtMs) return
    this.retryAtMs = null
    // After the check before; imports running in this process are left out of the records read.
    this.running = this.running.then(async () => this.sweepImportSlotsNow((await readImportSlots(this.ctx.config.workdir)).records, 'debug')).catch(() => {})
  }

  /** Ends what is under way: its connections close; waited for briefly, never blocking the stop. */
  async stop(): Promise<void> {
    this.abort.abort()
    await Promise.race([this.running, new Promise<void>((resolve) => setTimeout(resolve, STOP_WAIT_MS).unref())])
  }

  /** Drops the slots of imports that died (`records`: none of this process's own); see the header. */
  private async sweepImportSlotsNow(records: ImportSlotRecord[], leftLevel: 'warn' | 'debug'): Promise<void> {
    this.retryAtMs = null
    try {
      const sweep = await sweepImportSlots(this.ctx, this.repo, records, this.abort.signal)
      for (const d of sweep.dropped) this.ctx.log?.('info', 'dropped the replication slot of an import that did not finish', d)
      if (sweep.left.length > 0) this.retryAtMs = Date.now() + this.retryMs
      for (const l of sweep.left) {
        this.ctx.log?.(leftLevel, 'an import that did not finish left a replication slot', { ...l, hint: `It keeps WAL on that primary; it is tried again every ${Math.round(this.retryMs / 1000)} s while the server runs, or drop it there: ${l.dropWith}` })
      }
      for (const e of sweep.elsewhere) {
        this.ctx.log?.('warn', 'an import that did not finish left a replication slot on a cluster no longer at its address', {
          ...e,
          hint: `Nothing was dropped at ${e.server} (another cluster's slot of that name must not be); drop ${e.slotName} on the cluster the import used, if it still runs.`,
        })
      }
    } catch (e) {
      this.ctx.log?.('warn', 'could not check the replication slots of unfinished imports', { message: e instanceof Error ? e.message : String(e) })
    }
  }

  private async warnOrphanSlots(): Promise<void> {
    for (const connString of new Set(this.walSources())) {
      if (this.abort.signal.aborted) return
      try {
        const inv = await listSlots(this.ctx, { conn: sourceConnection(this.ctx, connString).params, signal: this.abort.signal })
        for (const e of inv.slots) {
          if (e.state !== 'orphan' || e.active) continue
          this.ctx.log?.('warn', 'orphan replication slot', {
            server: inv.server,
            slot: e.slotName,
            retainedBytes: e.retainedBytes,
            hint: `No timeline here uses it, and it keeps WAL on that primary: \`pageserver slot drop --from ${shellWord(stripPassword(connString).connString)} --slot ${e.slotName}\` (\`slot list\` with the same --from shows them all; a password comes from PGPASSWORD or ~/.pgpass).`,
          })
        }
      } catch (e) {
        this.ctx.log?.('debug', 'could not list the replication slots of a WAL source', { message: e instanceof Error ? e.message : String(e) })
      }
    }
  }
}
