import { BaseCommand } from '../../cli/base-command.js'
import { slotWarnings } from '../../cli/slots-render.js'
import type { SlotsDropped } from '../../core/app/slots.js'
import { tenantIdFlag } from '../../cli/flags.js'
import { deleteTenant } from '../../core/app/timelines.js'

export default class TenantDelete extends BaseCommand<typeof TenantDelete> {
  static override summary = 'Delete a tenant with all its timelines and layer files.'
  static override description =
    'Every timeline of the tenant goes, branches included. Crash-safe: the tenant directory is renamed to a ' +
    'tombstone before anything inside is removed, so an interrupted delete leaves the tenant whole or a ' +
    'tombstone the next start removes. Only local files are deleted: nothing is uploaded to remote storage ' +
    'yet, so there is no remote copy (as for timeline delete). The replication slots its timelines stream through ' +
    'are dropped on their primaries; a slot that cannot be (primary down, slot in use) is named in a warning with ' +
    'the SQL to drop it by hand (slotsLeft in JSON): it keeps WAL there until dropped. A timeline whose metadata cannot ' +
    'be read may hold a slot nobody can name: a warning gives the default slot name to look for (slotsUnknown). A missing tenant exits 3. With --json, ' +
    '{"tenantId": "...", "deleted": true, "slotsDropped": [...], "slotsLeft": [...], "slotsUnknown": [...]}. While `pageserver serve` runs on the workdir, the request goes ' +
    'through its management API: the server stops the tenant\'s WAL receivers and stops serving it first.'
  static override examples = ['<%= config.bin %> <%= command.id %> --tenant 0123456789abcdef0123456789abcdef']
  static override flags = {
    // --tenant as every other command that names an existing tenant; --tenant-id as `tenant create` names one.
    tenant: tenantIdFlag({ summary: 'The tenant to delete.', description: 'Also accepted as --tenant-id.', aliases: ['tenant-id'], required: true }),
  }

  async run(): Promise<{ tenantId: string; deleted: true } & Partial<SlotsDropped>> {
    const server = await this.serverClient()
    const r = server
      ? await server.request<{ tenantId: string; deleted: true } & Partial<SlotsDropped>>('DELETE', `/v1/tenant/${this.flags.tenant}`)
      : await deleteTenant(await this.appContext(), this.flags.tenant)
    this.log(`deleted tenant ${r.tenantId}`)
    const warnings = slotWarnings(r)
    if (warnings !== '' && !this.jsonEnabled()) process.stderr.write(warnings)
    return r
  }
}
