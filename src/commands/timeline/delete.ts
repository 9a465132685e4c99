import { Flags } from '@oclif/core'
import { BaseCommand } from '../../cli/base-command.js'
import { slotWarnings } from '../../cli/slots-render.js'
import type { SlotsDropped } from '../../core/app/slots.js'
import { tenantIdFlag, timelineIdFlag } from '../../cli/flags.js'
import { deleteTimeline } from '../../core/app/timelines.js'

export default class TimelineDelete extends BaseCommand<typeof TimelineDelete> {
  static override summary = 'Delete a timeline and its layer files.'
  static override description =
    'Refused (exit 4) while other timelines branch from it. A missing timeline exits 3. The replication slot it ' +
    'streams through (import, timeline source) is dropped on its primary; when that cannot be done (primary down, ' +
    'slot in use) a warning names the slot and the SQL to drop it by hand (slotsLeft in JSON): it keeps WAL there ' +
    'until dropped. A broken timeline (its metadata cannot be read) can be deleted; whether it held a slot is then ' +
    'unknown, and a warning gives the default slot name to look for (slotsUnknown). A timeline that a broken one ' +
    'might branch from is refused (TIMELINE_CHILDREN_UNKNOWN) unless --force. With --json, {"tenantId", ' +
    '"timelineId", "deleted": true, "slotsDropped": [...], "slotsLeft": [...], "slotsUnknown": [...]}.'
  static override examples = ['<%= config.bin %> <%= command.id %> --tenant 0123456789abcdef0123456789abcdef --timeline fedcba9876543210fedcba9876543210']
  static override flags = {
    tenant: tenantIdFlag({ summary: 'The tenant.', required: true }),
    timeline: timelineIdFlag({ summary: 'The timeline to delete.', required: true }),
    force: Flags.boolean({
      summary: 'Delete even when a broken timeline might branch from this one, or when it keeps layer files aside.',
      description:
        'Without it such a delete is refused: TIMELINE_CHILDREN_UNKNOWN when a timeline whose metadata cannot be read might ' +
        'branch from this one (restored, it would need this one as its ancestor); TIMELINE_HAS_FUTURE_LAYERS when this one keeps ' +
        'layer files in future-layers/ (above its metadata\'s disk_consistent_lsn, e.g. after an older metadata was restored: ' +
        'they may be the only copy of that WAL). With it, a branch that can be read still refuses the delete (TIMELINE_HAS_CHILDREN).',
    }),
  }

  async run(): Promise<{ tenantId: string; timelineId: string; deleted: true } & Partial<SlotsDropped>> {
    const server = await this.serverClient()
    const r = server
      ? await server.request<{ tenantId: string; timelineId: string; deleted: true } & Partial<SlotsDropped>>(
          'DELETE',
          `/v1/tenant/${this.flags.tenant}/timeline/${this.flags.timeline}${this.flags.force ? '?force=true' : ''}`,
        )
      : await deleteTimeline(await this.appContext(), this.flags.tenant, this.flags.timeline, { force: this.flags.force })
    this.log(`deleted timeline ${r.timelineId}`)
    const warnings = slotWarnings(r)
    if (warnings !== '' && !this.jsonEnabled()) process.stderr.write(warnings)
    return r
  }
}
