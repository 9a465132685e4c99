import { BaseCommand } from '../../cli/base-command.js'
import { renderTable } from '../../cli/render.js'
import { listTenants, type ListedTenant } from '../../core/app/timelines.js'

export default class TenantList extends BaseCommand<typeof TenantList> {
  static override summary = 'List the tenants of the workdir.'
  static override description =
    'With --json, an array of {"tenantId", "timelines"}. A tenant whose directory cannot be read is listed with ' +
    '"timelines": null and an "error" ({code, message, hint}), and a warning on stderr; the others are listed as usual.'
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --json']

  async run(): Promise<ListedTenant[]> {
    const tenants = await listTenants(await this.appContext())
    if (!this.jsonEnabled()) {
      if (tenants.length === 0) this.log('no tenants (create one with `pageserver tenant create`)')
      else this.log(await renderTable(['TENANT', 'TIMELINES'], tenants.map((t) => [t.tenantId, t.timelines ?? `cannot be read (${t.error?.code})`])))
    }
    for (const t of tenants) {
      if (t.error) process.stderr.write(`warning: tenant ${t.tenantId} cannot be read: ${t.error.message}${t.error.hint ? ` (${t.error.hint})` : ''}\n`)
    }
    return tenants
  }
}
