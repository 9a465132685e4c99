import { BaseCommand } from '../../cli/base-command.js'
import { renderTable } from '../../cli/render.js'
import { listTenants } from '../../core/app/timelines.js'

export default class TenantList extends BaseCommand<typeof TenantList> {
  static override summary = 'List the tenants of the workdir.'
  static override description = 'With --json, an array of {"tenantId", "timelines"}.'
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --json']

  async run(): Promise<Array<{ tenantId: string; timelines: number }>> {
    const tenants = await listTenants(await this.appContext())
    if (!this.jsonEnabled()) {
      if (tenants.length === 0) this.log('no tenants (create one with `pageserver tenant create`)')
      else this.log(await renderTable(['TENANT', 'TIMELINES'], tenants.map((t) => [t.tenantId, t.timelines])))
    }
    return tenants
  }
}
