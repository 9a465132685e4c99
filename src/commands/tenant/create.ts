import { BaseCommand } from '../../cli/base-command.js'
import { tenantIdFlag } from '../../cli/flags.js'
import { createTenant } from '../../core/app/timelines.js'

export default class TenantCreate extends BaseCommand<typeof TenantCreate> {
  static override summary = 'Create a tenant: an empty set of timelines sharing one PostgreSQL history.'
  static override description =
    'Creates <workdir>/tenants/<tenant_id>/ atomically: two creates of the same id give one success and one ' +
    'conflict (exit 4). Prints the new tenant id; with --json, {"tenantId": "..."}. While `pageserver serve` runs on ' +
    'the workdir, the request goes through its management API and the server serves the tenant at once.'
  static override examples = ['<%= config.bin %> <%= command.id %>', '<%= config.bin %> <%= command.id %> --tenant-id 0123456789abcdef0123456789abcdef --json']
  static override flags = {
    'tenant-id': tenantIdFlag({ summary: 'The id of the new tenant (32 hex characters); random by default.' }),
  }

  async run(): Promise<{ tenantId: string }> {
    const server = await this.serverClient()
    const result = server
      ? { tenantId: (await server.request<{ tenant_id: string }>('POST', '/v1/tenant', { new_tenant_id: this.flags['tenant-id'] })).tenant_id }
      : await createTenant(await this.appContext(), this.flags['tenant-id'])
    this.log(result.tenantId)
    return result
  }
}
