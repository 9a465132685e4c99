/**
 * What `pageserver config show` prints: the effective config as TOML (valid input for pageserver.toml, each
 * value marked with where it came from when not a default), or as a JSON-safe object for `--json`.
 *
 * Secrets never appear: credentials are not config keys (they are listed as comments with "<redacted>"),
 * and the JSON form serializes every `Secret` as "<redacted>".
 */
import type { ConfigOrigin, LoadedConfig } from './load.js'
import { credentialSources } from './remote-storage.js'
import { KEY_ENTRIES, type PageserverConfig } from './schema.js'
import { REDACTED } from './secret.js'
import { formatKeyName, formatTomlValue } from './toml-text.js'

/** The `--json` result of `config show`. */
export interface ConfigShowResult {
  readonly workdir: string
  readonly configPath: string
  readonly fileFound: boolean
  /** The typed config (camelCase, units last), secrets as "<redacted>". */
  readonly config: Record<string, unknown>
  /** Per TOML key: "default", "file" or "override". */
  readonly origins: Readonly<Record<string, ConfigOrigin>>
}

/** The config as plain JSON data; every Secret becomes "<redacted>" (Secret.toJSON). */
export function redactedConfigJson(config: PageserverConfig): Record<string, unknown> {
  return JSON.parse(JSON.stringify(config)) as Record<string, unknown>
}

export function configShowResult(loaded: LoadedConfig): ConfigShowResult {
  return {
    workdir: loaded.config.workdir,
    configPath: loaded.configPath,
    fileFound: loaded.fileFound,
    config: redactedConfigJson(loaded.config),
    origins: loaded.origins,
  }
}

const ORIGIN_MARK: Readonly<Record<ConfigOrigin, string>> = { default: '', file: '  # file', override: '  # -c' }

/** The effective config as TOML text with comments. */
export function renderEffectiveToml(loaded: LoadedConfig): string {
  const { config } = loaded
  const values = config as unknown as Record<string, unknown>
  const lines = [
    `# Effective configuration of ${config.workdir}`,
    loaded.fileFound ? `# from ${loaded.configPath}, -c overrides and built-in defaults` : `# ${loaded.configPath} does not exist: built-in defaults and -c overrides`,
    '# "# file" and "# -c" mark values that are not built-in defaults.',
  ]
  for (const entry of KEY_ENTRIES) {
    const value = values[entry.field]
    const name = formatKeyName(entry.toml)
    if (value === null || value === undefined) {
      lines.push(`# ${name} is not set`)
      continue
    }
    lines.push(`${name} = ${formatTomlValue(entry.kind.display(value))}${ORIGIN_MARK[loaded.origins[entry.toml] ?? 'default']}`)
  }
  if (config.remoteStorage !== null) {
    for (const env of credentialSources(config.remoteStorage)) lines.push(`# ${env} = ${REDACTED} (from the environment)`)
  }
  return lines.join('\n') + '\n'
}
