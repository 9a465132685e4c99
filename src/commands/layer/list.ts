/**
 * `pageserver layer list --tenant T --timeline TL`: the layer files of a timeline directory, by name and
 * size (no file is opened). With --json, an array of {name, kind, keyStart, keyEnd, lsnStart, lsnEnd,
 * sizeBytes} (LSNs as "X/X"; an image layer at L has lsnStart L and lsnEnd L+1).
 */
import { BaseCommand } from '../../cli/base-command.js'
import { tenantIdFlag, timelineIdFlag } from '../../cli/flags.js'
import { renderTable } from '../../cli/render.js'
import { requireWorkdir } from '../../core/app/context.js'
import { listLayerFiles } from '../../core/layer/layer-files.js'
import { formatBytes } from '../../core/lib/units.js'
import { MAX_KEY, MIN_KEY } from '../../core/model/key.js'
import { formatLsn } from '../../core/pg/lsn.js'

export interface LayerListItem {
  readonly name: string
  readonly kind: 'delta' | 'image'
  readonly keyStart: string
  readonly keyEnd: string
  readonly lsnStart: string
  readonly lsnEnd: string
  readonly sizeBytes: number
}

export default class LayerList extends BaseCommand<typeof LayerList> {
  static override summary = 'List the delta and image layer files of a timeline.'

  static override description =
    'Reads the timeline directory <workdir>/tenants/<tenant>/timelines/<timeline> and lists every file whose ' +
    'name is a layer name (<key start>-<key end>__<lsn start>-<lsn end> for delta layers, ' +
    '<key start>-<key end>__<lsn> for image layers), ordered by LSN, then key: kind, key range, LSN range ' +
    '(end exclusive) and size. Files are not opened; `pageserver layer dump FILE` checks and shows one. ' +
    'Temp (*___temp) and ephemeral-* files are not layers and are not listed. With --json prints an array of ' +
    '{name, kind, keyStart, keyEnd, lsnStart, lsnEnd, sizeBytes}. A missing tenant or timeline directory exits 3 ' +
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
    const items: LayerListItem[] = layers.map((l) => ({
      name: l.name,
      kind: l.kind,
      keyStart: l.keyStart,
      keyEnd: l.keyEnd,
      lsnStart: formatLsn(l.lsnStart),
      lsnEnd: formatLsn(l.lsnEnd),
      sizeBytes: l.sizeBytes,
    }))
    if (!this.jsonEnabled()) {
      if (layers.length === 0) {
        this.log(`No layer files in ${dir}`)
      } else {
        const rows = layers.map((l) => [
          l.kind,
          l.keyStart === MIN_KEY && l.keyEnd === MAX_KEY ? (l.kind === 'delta' ? 'all keys (L0)' : 'all keys') : `${l.keyStart}-${l.keyEnd}`,
          l.kind === 'image' ? `@ ${formatLsn(l.lsnStart)}` : `${formatLsn(l.lsnStart)} .. ${formatLsn(l.lsnEnd)}`,
          formatBytes(l.sizeBytes),
        ])
        this.log(await renderTable(['Kind', 'Key range', 'LSN range', 'Size'], rows))
        const total = layers.reduce((s, l) => s + l.sizeBytes, 0)
        this.log(`${layers.length} layer files, ${formatBytes(total)}`)
      }
    }
    return items
  }
}
