/**
 * `pageserver wal receive`: stream WAL from a PostgreSQL 15 primary over physical replication and print
 * each record (like `wal dump`), or a summary line per second.
 *
 * A diagnostic tool: it never advances a replication slot unless --advance-slot is given (then the slot
 * follows the records printed). It reconnects with backoff when the primary restarts, resuming after the
 * last record printed. SIGINT/SIGTERM end the stream cleanly (CopyDone, Terminate) with exit 0 and a final
 * summary (stderr, or a last `{"end": ...}` line with --json). A spinner with LSN and lag is drawn on stderr
 * only when stderr is a terminal and stdout is not (so it never garbles the records on the same screen).
 */
import { Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command.js'
import { toUserFacing } from '../../cli/errors.js'
import { StdoutSink } from '../../cli/stdout-sink.js'
import { lsnFlag } from '../../cli/flags.js'
import { isInteractive, startProgress, type Progress } from '../../cli/render.js'
import { formatLsn, type Lsn } from '../../core/pg/lsn.js'
import { formatRecordLine, recordToJson } from '../../core/pg/wal-format.js'
import { parseFromFlag } from '../../cli/conn-env.js'
import { chooseStart, probePrimary } from '../../core/walreceiver/receive-start.js'
import { WalReceiver, type ReceiverLogEvent } from '../../core/walreceiver/wal-receiver.js'

type EndReason = 'until' | 'interrupted' | 'output-closed'

export default class WalReceive extends BaseCommand<typeof WalReceive> {
  static override jsonLines = true
  static override summary = 'Stream WAL from a PostgreSQL 15 primary and print its records, or a summary per second.'

  static override description =
    'Connects to a primary in physical replication mode (trust, password, md5 or SCRAM-SHA-256 authentication), ' +
    'runs IDENTIFY_SYSTEM and START_REPLICATION, decodes the stream and prints one line per record in the format ' +
    'of `wal dump` (with --json, one JSON object per line with the same fields as `wal dump --json`). With ' +
    '--summary it prints one line per second instead: records, bytes, the LSN reached and the lag behind the ' +
    "server's end of WAL. It reconnects with backoff when the primary restarts or the connection drops, and " +
    'resumes after the last record printed, so no record is printed twice or skipped. Ctrl-C stops cleanly. ' +
    'This command never moves a replication slot unless --advance-slot is given.'

  static override examples = [
    { description: 'Print records as they are written.', command: "<%= config.bin %> <%= command.id %> --from 'host=127.0.0.1 user=replicator password=secret'" },
    { description: 'Throughput and lag, once a second.', command: '<%= config.bin %> <%= command.id %> --from postgresql://replicator@db:5432 --summary' },
    {
      description: 'Records between two LSNs, as JSON lines.',
      command: '<%= config.bin %> <%= command.id %> --from postgresql://postgres@127.0.0.1 --start 0/3000028 --until 0/3100000 --json',
    },
  ]

  static override flags = {
    from: Flags.string({
      summary: 'Connection string of the primary: "host=... port=... user=... password=..." or postgresql://user:password@host:port.',
      description:
        'Unset parts come from PGHOST, PGPORT, PGUSER and PGPASSWORD, then libpq defaults (localhost, 5432, postgres); a missing password ' +
        'from the password file (passfile, PGPASSFILE, ~/.pgpass; its database field is `replication`).',
      required: true,
    }),
    slot: Flags.string({
      summary: 'Stream from this physical replication slot; it is created (RESERVE_WAL) if missing.',
      description:
        'A created slot makes the primary keep WAL from its restart_lsn until it is dropped: drop it with ' +
        "SELECT pg_drop_replication_slot('NAME') when done. Its creation is said on stderr (with --json too) and in the end " +
        'line (`slot`, `slotCreated`). Without --advance-slot the slot is never moved.',
    }),
    start: lsnFlag({
      summary: "First LSN (a page boundary or a record start). Default: the restart_lsn of a slot that exists (--slot), else the start of the current WAL segment (also when --slot creates the slot).",
    }),
    until: lsnFlag({ summary: 'Stop after the record that ends at or past this LSN.' }),
    summary: Flags.boolean({ summary: 'Print one line per second (records, bytes, LSN, lag) instead of one line per record.', default: false }),
    'advance-slot': Flags.boolean({
      summary: 'Report the end of each printed record as flushed, so the slot (--slot) advances and the primary may recycle WAL.',
      description: 'Off by default: as a diagnostic tool, wal receive reports nothing as flushed and leaves the slot where it is.',
      default: false,
    }),
    'connect-retries': Flags.integer({
      summary: 'Retries after a failed connection before giving up (exit 6): N retries are N+1 attempts in a row; 0 gives up at the first failure.',
      default: 10,
      min: 0,
    }),
  }

  public async run(): Promise<void> {
    const json = this.jsonEnabled()
    const f = this.flags
    const out = new StdoutSink()
    const stop = new AbortController()
    let reason: EndReason | undefined
    const onSignal = (): void => {
      reason ??= 'interrupted'
      stop.abort()
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
    const interrupted = new Promise<void>((resolve) => stop.signal.addEventListener('abort', () => resolve(), { once: true }))
    const spinnerWanted = !json && isInteractive() && !process.stdout.isTTY
    let progress: Progress | undefined
    let rx: WalReceiver | undefined
    let timer: NodeJS.Timeout | undefined
    const startedAt = Date.now()
    let slotCreated = false
    try {
      const conn = parseFromFlag(f.from, process.env, 'pageserver wal receive')
      const backoff = { initialDelayMs: 200, maxDelayMs: 5_000 }
      const logger = (e: ReceiverLogEvent): void => {
        // Retries and failures go to stderr in every mode (stdout stays records only, JSON or not).
        if (e.level !== 'info') {
          progress?.stop()
          process.stderr.write(`pageserver: ${e.message}\n`)
        }
      }
      const info = await probePrimary(conn, { slotName: f.slot, attemptsMax: f['connect-retries'], backoff, signal: stop.signal, logger })
      const start = chooseStart(info, f.start)
      // Said on stderr with --json too (stdout carries only records), and in the end line: a slot left behind
      // keeps WAL on the primary until someone drops it.
      slotCreated = f.slot !== undefined && info.slot === null
      if (slotCreated) {
        process.stderr.write(`pageserver: creating physical replication slot ${f.slot}; drop it with SELECT pg_drop_replication_slot('${f.slot}') when done\n`)
      }
      rx = new WalReceiver({
        conn,
        slotName: f.slot,
        startLsn: start.startLsn,
        expectedSystemId: info.system.systemId,
        reconnectAttemptsMax: f['connect-retries'],
        backoff,
        signal: stop.signal,
        logger,
      })
      const receiver = rx
      progress = spinnerWanted ? await startProgress(`receiving from ${formatLsn(start.startLsn)}`, json) : undefined
      let lastTick = { at: Date.now(), records: 0, bytes: 0 }
      let shown = 0
      const lagBytes = (): bigint => {
        const s = receiver.stats
        return s.serverWalEnd > s.lastRecordEnd ? s.serverWalEnd - s.lastRecordEnd : 0n
      }
      const tick = (): void => {
        const s = receiver.stats
        const now = Date.now()
        const secs = Math.max((now - lastTick.at) / 1000, 0.001)
        const line = {
          records: shown,
          recordsPerSec: Math.round((shown - lastTick.records) / secs),
          bytes: s.walBytes,
          bytesPerSec: Math.round((s.walBytes - lastTick.bytes) / secs),
          lsn: formatLsn(s.lastRecordEnd),
          lagBytes: Number(lagBytes()),
          sessions: s.sessions,
        }
        lastTick = { at: now, records: shown, bytes: s.walBytes }
        progress?.update(`${line.lsn}  lag ${line.lagBytes} B  ${shown} records  ${line.recordsPerSec}/s`)
        if (!f.summary) return
        if (json) out.write(JSON.stringify({ summary: line }) + '\n')
        else out.write(`records ${line.records} (${line.recordsPerSec}/s)  bytes ${line.bytes} (${line.bytesPerSec} B/s)  lsn ${line.lsn}  lag ${line.lagBytes} B\n`)
      }
      timer = setInterval(tick, 1000)
      timer.unref()

      outer: for await (const batch of receiver.batches()) {
        let text = ''
        for (const rec of batch) {
          if (rec.lsn >= start.skipBeforeLsn) {
            shown++
            if (!f.summary) text += json ? JSON.stringify(recordToJson(rec)) + '\n' : formatRecordLine(rec) + '\n'
            if (f['advance-slot']) receiver.markDurable(rec.endLsn)
          }
          if (f.until !== undefined && rec.endLsn >= f.until) {
            reason = 'until'
            out.write(text)
            break outer
          }
        }
        out.write(text)
        // A slow reader (a pager, a full pipe) slows the stream instead of filling memory: the receiver stops
        // pulling and the replication socket pauses (its queue is bounded). An interrupt does not wait for it.
        await Promise.race([out.drained(), interrupted])
        if (out.closed) {
          reason = 'output-closed'
          break
        }
      }
      if (timer) clearInterval(timer)
      timer = undefined
      await receiver.close()
      progress?.stop()
      this.printEnd(json, out, receiver, shown, reason ?? 'interrupted', start.startLsn, Date.now() - startedAt, lagBytes(), f.slot ?? null, slotCreated)
    } catch (err) {
      if (timer) clearInterval(timer)
      progress?.stop()
      await rx?.close()
      if (out.closed) return
      if (stop.signal.aborted) {
        // Interrupted while connecting: a clean stop, like an interrupt while streaming.
        if (!json) process.stderr.write('pageserver: interrupted before streaming started\n')
        else out.write(JSON.stringify({ end: { reason: 'interrupted', records: 0 } }) + '\n')
        return
      }
      this.exit(await out.reportError(toUserFacing(err), json, Boolean(process.env.PAGESERVER_DEBUG)))
    } finally {
      process.off('SIGINT', onSignal)
      process.off('SIGTERM', onSignal)
      out.dispose()
    }
  }

  private printEnd(
    json: boolean,
    out: StdoutSink,
    rx: WalReceiver,
    records: number,
    reason: EndReason,
    startLsn: Lsn,
    elapsedMs: number,
    lag: bigint,
    slot: string | null,
    slotCreated: boolean,
  ): void {
    const s = rx.stats
    const end = {
      reason,
      records,
      bytes: s.walBytes,
      startLsn: formatLsn(startLsn),
      endLsn: formatLsn(s.lastRecordEnd),
      serverWalEnd: formatLsn(s.serverWalEnd),
      lagBytes: Number(lag),
      sessions: s.sessions,
      systemId: s.systemId !== undefined ? String(s.systemId) : null,
      timeline: s.timeline ?? null,
      elapsedMs,
      slot,
      slotCreated,
    }
    if (json) out.write(JSON.stringify({ end }) + '\n')
    else {
      process.stderr.write(
        `pageserver: ${records} records, ${s.walBytes} bytes from ${end.startLsn} to ${end.endLsn} in ${(elapsedMs / 1000).toFixed(1)} s ` +
          `(${reason}; ${s.sessions} session${s.sessions === 1 ? '' : 's'}, lag ${end.lagBytes} B)\n`,
      )
    }
  }
}
