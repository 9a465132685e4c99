/**
 * `pageserver layer list --tenant T --timeline TL`: the layer files of a timeline directory, by name and
 * size (no file is opened), and what the timeline's metadata makes of each (state). With --json, an array of
 * {name, kind, keyStart, keyEnd, lsnStart, lsnEnd, sizeBytes, state} (LSNs as "X/X"; an image layer at L has
 * lsnStart L and lsnEnd L+1).
 */
import { BaseCommand } from '../../cli/base-command.js'
import { tenantIdFlag, timelineIdFlag } from '../../cli/flags.js'
import { renderTable } from '../../cli/render.js'
import { requireWorkdir } from '../../core/app/context.js'
import { listLayerFiles } from '../../core/layer/layer-files.js'
import { formatBytes } from '../../core/lib/units.js'
import { MAX_KEY, MIN_KEY } from '../../core/model/key.js'
import { formatLsn } from '../../core/pg/lsn.js'
import { join } from 'node:path'
import { messageOf } from '../../core/lib/errors.js'
import { parseLayerFileName } from '../../core/layer/layer-name.js'
import { readMetadata } from '../../core/repository/metadata.js'
import { METADATA_FILE } from '../../core/repository/timeline.js'
import { classifyLayerFiles, type LayerFileState } from '../../core/repository/layer-selection.js'

export interface LayerListItem {
  readonly name: string
  readonly kind: 'delta' | 'image'
  readonly keyStart: string
  readonly keyEnd: string
  readonly lsnStart: string
  readonly lsnEnd: string
  /** null for a layer the metadata lists that is not in the directory. */
  readonly sizeBytes: number | null
  /**
   * What the timeline's metadata makes of it: `layer`; `future` (above disk_consistent_lsn: moved aside at the
   * next load); `not-listed` (a file from elsewhere: the timeline will not load); `missing` (listed, not
   * there: the timeline will not load); `unknown` when the metadata cannot be read.
   */
  readonly state: LayerFileState | 'missing' | 'unknown'
}

export default class LayerList extends BaseCommand<typeof LayerList> {
  static override summary = 'List the delta and image layer files of a timeline.'

  static override description =
    'Reads the timeline directory <workdir>/tenants/<tenant>/timelines/<timeline> and lists every file whose ' +
    'name is a layer name (<key start>-<key end>__<lsn start>-<lsn end> for delta layers, ' +
    '<key start>-<key end>__<lsn> for image layers), ordered by LSN, then key: kind, key range, LSN range ' +
    '(end exclusive) and size. Files are not opened; `pageserver layer dump FILE` checks and shows one. ' +
    'Temp (*___temp) and ephemeral-* files are not layers and are not listed. Each file\'s state says what the ' +
    'timeline\'s metadata makes of it: layer; future (above disk_consistent_lsn, moved into future-layers/ at the next ' +
    'load); not-listed (a file from elsewhere: the timeline will not load while it is there); and layers the ' +
    'metadata lists that are not in the directory are listed as missing (the timeline will not load until they are ' +
    'back); each but layer with a warning on stderr. With --json prints an array of {name, kind, keyStart, keyEnd, ' +
    'lsnStart, lsnEnd, sizeBytes (null when missing), state}. A missing tenant or timeline directory exits 3 ' +
    '(TENANT_NOT_FOUND, TIMELINE_NOT_FOUND).'

  static override examples = [
    {
      description: 'The layers of one timeline.',
      command: '<%= config.bin %> <%= command.id %> --tenant 0123456789abcdef0123456789abcdef --timeline fedcba9876543210fedcba9876543210',
    },
  ]

  static override flags = {
    tenant: tenantIdFlag({ summary: 'Tenant id (32 hex characters).', required: true }),
    timeline: timelineIdFlag({ summary: 'Timeline id (32 hex characters).', required: true }),
  }

  public async run(): Promise<LayerListItem[]> {
    await requireWorkdir(this.flags.workdir)
    const { dir, layers } = await listLayerFiles(this.flags.workdir, this.flags.tenant, this.flags.timeline)
    let classified: ReturnType<typeof classifyLayerFiles> | null = null
    try {
      classified = classifyLayerFiles(layers.map((l) => l.name), readMetadata(join(dir, METADATA_FILE)))
    } catch (e) {
      process.stderr.write(`warning: the timeline's metadata cannot be read (${messageOf(e)}): files are listed without their state\n`)
    }
    const states = classified === null ? null : new Map(classified.files.map((f) => [f.fileName, f.state]))
    const items: LayerListItem[] = layers.map((l) => ({
      name: l.name,
      kind: l.kind,
      keyStart: l.keyStart,
      keyEnd: l.keyEnd,
      lsnStart: formatLsn(l.lsnStart),
      lsnEnd: formatLsn(l.lsnEnd),
      sizeBytes: l.sizeBytes,
      state: states?.get(l.name) ?? 'unknown',
    }))
    for (const name of classified?.missing ?? []) {
      const p = parseLayerFileName(name)
      if (p === null) continue
      const d = p.desc
      items.push({ name, kind: d.kind, keyStart: d.keyRange.start, keyEnd: d.keyRange.end, lsnStart: formatLsn(d.lsnRange.start), lsnEnd: formatLsn(d.lsnRange.end), sizeBytes: null, state: 'missing' })
    }
    for (const i of items) {
      if (i.state === 'missing') process.stderr.write(`warning: ${i.name} is listed in the timeline's metadata but is not in ${dir}: the timeline will not load until it is back\n`)
      if (i.state === 'not-listed') process.stderr.write(`warning: ${i.name} is not one of the timeline's layers (its metadata does not list it): the timeline will not load while it is there\n`)
      if (i.state === 'future') process.stderr.write(`warning: ${i.name} is above the timeline's disk_consistent_lsn: the next load moves it into future-layers/\n`)
    }
    if (!this.jsonEnabled()) {
      if (items.length === 0) {
        this.log(`No layer files in ${dir}`)
      } else {
        const rows = items.map((l) => [
          l.kind,
          l.keyStart === MIN_KEY && l.keyEnd === MAX_KEY ? (l.kind === 'delta' ? 'all keys (L0)' : 'all keys') : `${l.keyStart}-${l.keyEnd}`,
          l.kind === 'image' ? `@ ${l.lsnStart}` : `${l.lsnStart} .. ${l.lsnEnd}`,
          l.sizeBytes === null ? '-' : formatBytes(l.sizeBytes),
          l.state,
        ])
        this.log(await renderTable(['Kind', 'Key range', 'LSN range', 'Size', 'State'], rows))
        const total = layers.reduce((s, l) => s + l.sizeBytes, 0)
        this.log(`${layers.length} layer files, ${formatBytes(total)}`)
      }
    }
    return items
  }
}
