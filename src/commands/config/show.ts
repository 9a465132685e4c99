/**
 * `pageserver config show`: the effective config (pageserver.toml + -c overrides + defaults) as TOML, or
 * with --json as `{workdir, configPath, fileFound, config, origins}`. Credentials are always "<redacted>".
 */
import { BaseCommand } from '../../cli/base-command.js'
import { configShowResult, inspectConfig, renderEffectiveToml, type ConfigShowResult } from '../../core/config/index.js'

export default class ConfigShow extends BaseCommand<typeof ConfigShow> {
  static override summary = 'Print the effective configuration (secrets redacted).'

  static override description =
    'Loads <workdir>/pageserver.toml (all defaults when absent), applies each -c override in order and ' +
    'validates the result, exactly as every other command does. Prints it as TOML, each value that is not a ' +
    'built-in default marked "# file" or "# -c"; the output is itself a valid pageserver.toml. With --json ' +
    'prints {workdir, configPath, fileFound, config, origins}, where config uses camelCase names with units ' +
    'last (checkpointDistanceBytes, checkpointTimeoutMs) and origins maps each TOML key to "default", "file" ' +
    'or "override". Credentials from the environment are shown as "<redacted>".'

  static override examples = [
    { description: 'Show the config of .neon/.', command: '<%= config.bin %> <%= command.id %>' },
    {
      description: 'See the effect of an override without changing the file.',
      command: '<%= config.bin %> <%= command.id %> -c checkpoint_timeout=30s --json',
    },
  ]

  public async run(): Promise<ConfigShowResult> {
    const loaded = await inspectConfig({ workdir: this.flags.workdir, overrides: this.flags.config ?? [], env: process.env })
    this.log(renderEffectiveToml(loaded).trimEnd())
    return configShowResult(loaded)
  }
}
