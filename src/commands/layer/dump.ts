/**
 * `pageserver layer dump FILE`: check a delta or image layer file and print its summary and every entry.
 *
 * Every index block and value is read and CRC-checked on the way, so a clean exit means a clean file.
 * Output streams (a 256 MiB layer holds millions of entries): text is one line per entry; --json is JSON
 * lines: {"summary": {...}}, then one object per entry, then {"end": {"entries": N}}. Damage (a bad index
 * block, entry or value) is printed where it is met ({"fault": {...}} under --json) and the scan goes on past
 * it; then the error naming the file and the count ({"error": {...}} as the last line under --json), exit 5; so is an intact file the page server would refuse at its path
 * (LAYER_MISPLACED). A missing file exits 3. A closed stdout (`| head`) ends quietly.
 */
import { Args, Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command.js'
import { toUserFacing } from '../../cli/errors.js'
import { StdoutSink } from '../../cli/stdout-sink.js'
import { describeEntry, expectedPlacementOf, openLayerFile, type DumpedEntry } from '../../core/layer/layer-dump.js'
import { misplacedLayer } from '../../core/layer/layer-file-reader.js'
import type { LayerSummary } from '../../core/layer/layer-file-reader.js'
import { formatBytes } from '../../core/lib/units.js'
import { CorruptionError } from '../../core/lib/errors.js'
import { formatLsn } from '../../core/pg/lsn.js'
import { describeKey } from '../../core/datadir/mapping.js'

/** Entries are printed in batches of this many lines (one stdout write per batch). */
const PRINT_BATCH_ENTRIES = 1000
/** Faults listed one per line at most; the rest are counted in the closing error. */
const FAULTS_LISTED_MAX = 10_000
/** ... or sooner, at this much text: with --values a line holds a page in hex (16 KiB), so 1,000 lines are 16 MiB. */
const PRINT_BATCH_CHARS_MAX = 256 * 1024

export default class LayerDump extends BaseCommand<typeof LayerDump> {
  static override jsonLines = true
  static override summary = 'Check a layer file and print its summary and entries.'

  static override description =
    'Opens a delta or image layer file, validates its header and indexes, then reads every entry and value, ' +
    'checking each CRC-32C, and prints the summary (kind, tenant, timeline, key and LSN ranges, counts, sizes) ' +
    'followed by one line per entry: key, LSN, kind (image or record), length, will-init, and for a WAL record ' +
    'its resource manager and record type as pg_waldump names them. --values adds each value\'s bytes in hex. ' +
    'Each entry also names what its key stands for ("rel 1663/5/16397 main blk 1", "pg_xact 0000 page 3", ...). ' +
    'With --json, prints JSON lines: {"summary": {...}}, then one {key, object, lsn, kind, lengthBytes, willInit, rmgr, ' +
    'type, storedBytes[, data]} per entry, then {"end": {"entries": N}}. Damage inside the file (an index block, ' +
    'an entry or a value failing its checks) is printed where it is met ("FAULT: ..." lines; {"fault": {code, ' +
    'message}} under --json) and the scan goes on past it (a bad index block is skipped whole), so the whole extent ' +
    'shows (the first 10,000 faults are listed, the rest counted); then an error naming the file and the number of faults, exit 5. A file whose header or top-level index ' +
    'is damaged cannot be scanned: the error alone, exit 5. A missing file exits 3. A file intact but ' +
    'not where the page server would accept it (its header names another layer than its file name, or another ' +
    'tenant or timeline than the directory it is in) is dumped, then reported as LAYER_MISPLACED, exit 5.'

  static override examples = [
    {
      description: 'Check a layer file and list its entries (`layer list` names the files of a timeline).',
      command: '<%= config.bin %> <%= command.id %> ".neon/tenants/$T/timelines/$TL/$LAYER"',
    },
    { description: 'Only the summary, as JSON.', command: '<%= config.bin %> <%= command.id %> LAYER_FILE --json | head -1' },
  ]

  static override args = {
    file: Args.string({ description: 'Path of a delta or image layer file.', required: true }),
  }

  static override flags = {
    values: Flags.boolean({ summary: 'Also print each value\'s bytes in hex.', default: false }),
  }

  public async run(): Promise<void> {
    const json = this.jsonEnabled()
    const out = new StdoutSink()
    let printed = 0
    let pending = ''
    // Damage is reported where it is met and the scan goes on, so the whole extent shows (an operator deciding
    // what to restore needs it); the first fault decides the exit.
    // Only the first fault and the count are kept, and at most FAULTS_LISTED_MAX faults are listed: faults come
    // from inside the synchronous scan, where no drain can be awaited, and a damaged value area can hold millions.
    let firstFault: CorruptionError | null = null
    let faults = 0
    const onFault = (f: CorruptionError): void => {
      firstFault ??= f
      if (++faults > FAULTS_LISTED_MAX) return
      pending += json ? JSON.stringify({ fault: { code: f.code, message: f.message } }) + '\n' : `FAULT: ${f.message}\n`
    }
    try {
      const reader = openLayerFile(this.args.file)
      try {
        const summary = reader.dumpSummary()
        out.write(json ? JSON.stringify({ summary: summaryToJson(summary) }) + '\n' : summaryText(summary))
        for (const e of reader.entries(onFault)) {
          const d = describeEntry(e, reader.path)
          pending += json ? JSON.stringify(entryToJson(d, this.flags.values)) + '\n' : entryLine(d, this.flags.values)
          if (++printed % PRINT_BATCH_ENTRIES === 0 || pending.length >= PRINT_BATCH_CHARS_MAX) {
            out.write(pending)
            pending = ''
            // The entries are read synchronously: without this wait nothing reaches the pipe before the loop
            // ends, and the whole dump (hundreds of MiB for a large layer) would queue in memory.
            await out.drained()
            if (out.closed) return
          }
        }
        if (firstFault !== null) throw damaged(reader.path, firstFault, faults, printed)
        const misplaced = reader.placementProblem(expectedPlacementOf(reader.path))
        if (misplaced !== null) throw misplacedLayer(reader.path, misplaced)
      } finally {
        reader.close()
      }
      out.write(pending)
      out.write(json ? JSON.stringify({ end: { entries: printed } }) + '\n' : `${printed} entries, all checksums valid\n`)
    } catch (err) {
      out.write(pending)
      if (out.closed) return
      this.exit(await out.reportError(toUserFacing(err), json, Boolean(process.env.PAGESERVER_DEBUG)))
    } finally {
      out.dispose()
    }
  }
}

/** The error a dump with faults ends with: the first fault's code, how many there were, what was intact. */
function damaged(path: string, first: CorruptionError, faults: number, intact: number): CorruptionError {
  const unlisted = faults > FAULTS_LISTED_MAX ? `, ${faults - FAULTS_LISTED_MAX} of them not listed` : ''
  return new CorruptionError(first.code, faults === 1 ? first.message : `${faults} faults in ${path} (${intact} entries intact${unlisted}); the first: ${first.message}`, {
    ...(first.hint === undefined ? {} : { hint: first.hint }),
    details: { path, faults, entriesIntact: intact },
    cause: first,
  })
}

function summaryToJson(s: LayerSummary): Record<string, unknown> {
  return { ...s, lsnStart: formatLsn(s.lsnStart), lsnEnd: formatLsn(s.lsnEnd) }
}

function summaryText(s: LayerSummary): string {
  const lsns = s.kind === 'image' ? `${formatLsn(s.lsnStart)}` : `${formatLsn(s.lsnStart)} .. ${formatLsn(s.lsnEnd)} (end exclusive)`
  return (
    `Layer file ${s.path}\n` +
    `  name:       ${s.name}\n` +
    `  kind:       ${s.kind} (format version ${s.formatVersion})\n` +
    `  tenant:     ${s.tenantId}\n` +
    `  timeline:   ${s.timelineId}\n` +
    `  keys:       ${s.keyStart} .. ${s.keyEnd} (end exclusive)\n` +
    `  LSNs:       ${lsns}\n` +
    `  entries:    ${s.entryCount} (${s.keyCount} keys)\n` +
    `  values:     ${formatBytes(s.valueBytes)} stored, ${formatBytes(s.rawValueBytes)} raw, ${s.compressedCount} compressed (${s.codec})\n` +
    `  index:      ${s.indexBlockCount} blocks of ${s.indexBlockBytes} bytes\n` +
    `  file size:  ${s.fileSizeBytes} bytes\n` +
    '\n'
  )
}

function entryLine(d: DumpedEntry, values: boolean): string {
  const what = d.rmgr !== null ? ` ${d.rmgr}/${d.type}` : ''
  const line = `${d.key} ${formatLsn(d.lsn)} ${d.kind} ${d.lengthBytes} ${d.willInit ? 'will-init' : '-'}${what} (${describeKey(d.key)})\n`
  return values ? `${line}  ${d.payload.toString('hex')}\n` : line
}

function entryToJson(d: DumpedEntry, values: boolean): Record<string, unknown> {
  const o: Record<string, unknown> = {
    key: d.key,
    object: describeKey(d.key),
    lsn: formatLsn(d.lsn),
    kind: d.kind,
    lengthBytes: d.lengthBytes,
    willInit: d.willInit,
    rmgr: d.rmgr,
    type: d.type,
    storedBytes: d.storedBytes,
  }
  if (values) o.data = d.payload.toString('hex')
  return o
}
