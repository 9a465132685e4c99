/**
 * The config module's public face: load the effective config, inspect where values came from, initialize a
 * workdir, render the template and the `config show` output. See schema.ts for every key.
 */
export { CONFIG_FILE_NAME, inspectConfig, loadConfig, readConfigFile, resolveConfig } from './load.js'
export type { ConfigOrigin, LoadConfigOptions, LoadedConfig, ResolveConfigInput } from './load.js'
export { initWorkdir, TENANTS_DIR_NAME } from './init.js'
export type { InitWorkdirOptions, InitWorkdirResult } from './init.js'
export { AUTH_TYPES, CONFIG_ENTRIES, KNOWN_KEYS } from './schema.js'
export type { AuthType, PageserverConfig, RemoteStorageConfig } from './schema.js'
export type { AzureRemoteStorage, LocalRemoteStorage, S3Credentials, S3RemoteStorage } from './remote-storage.js'
export { formatHostPort, splitHostPort, type HostPort } from '../lib/host-port.js'
export { Secret, REDACTED } from './secret.js'
export { renderConfigTemplate } from './template.js'
export { configShowResult, redactedConfigJson, renderEffectiveToml, type ConfigShowResult } from './show.js'
