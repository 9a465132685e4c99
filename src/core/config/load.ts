/**
 * Loading the effective config: `<workdir>/pageserver.toml` (absent = all defaults), then each `-c`
 * fragment in order, then validation into a frozen `PageserverConfig`.
 *
 * Override semantics are Neon's (2021-2024 `-c`): every top-level key of a fragment replaces the whole value
 * of that key, last one wins, no deep merge; so `-c "remote_storage={local_path='/x/'}"` replaces the file's
 * whole remote_storage table and cannot mix with its bucket_name. Alias keys (`auth_type`) are expanded
 * inside their own document first, so an explicit `pg_auth_type` next to them wins and a later fragment
 * overrides both.
 *
 * Invariants: every key of every document is known (else CONFIG_UNKNOWN_KEY with the closest known key);
 * every error names the key and where its value came from; credentials come only from `env`; the returned
 * config and everything in it is frozen. Only this directory and storage/ touch node:fs for config.
 */
import { open } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { UsageError, isNotFoundFsError, messageOf } from '../lib/errors.js'
import { missingKey, type ValueContext } from './errors.js'
import { ALIAS_ENTRIES, KEY_ENTRIES, KNOWN_KEYS, type PageserverConfig } from './schema.js'
import { closestKey } from './suggest.js'
import { statRegularFile } from '../storage/input-file.js'
import { CONFIG_FILE_SIZE_MAX_BYTES, CONFIG_OVERRIDES_MAX, overrideLabel, parseOverride, parseTomlDocument, type RawTable } from './toml-text.js'

export const CONFIG_FILE_NAME = 'pageserver.toml'

export interface LoadConfigOptions {
  /** -D/--workdir; relative paths are resolved against the current directory. */
  readonly workdir: string
  /** The `-c` values, in command-line order. */
  readonly overrides?: readonly string[]
  /** Where credentials come from; the CLI passes process.env. Nothing else is read from it. */
  readonly env?: Readonly<Record<string, string | undefined>>
}

/** Where the effective value of a key came from. */
export type ConfigOrigin = 'default' | 'file' | 'override'

export interface LoadedConfig {
  readonly config: PageserverConfig
  /** Absolute path of `<workdir>/pageserver.toml`, whether or not it exists. */
  readonly configPath: string
  readonly fileFound: boolean
  /** Per TOML key (aliases expanded): default, file, or a -c override. */
  readonly origins: Readonly<Record<string, ConfigOrigin>>
  /** The `-c` fragments merged (aliases expanded), raw as parsed: what `init` writes as chosen values. */
  readonly overrideTable: Readonly<RawTable>
}

interface Document {
  readonly table: RawTable
  readonly where: string
  readonly origin: Exclude<ConfigOrigin, 'default'>
}

interface Setting {
  readonly raw: unknown
  readonly where: string
  readonly origin: Exclude<ConfigOrigin, 'default'>
}

/** The effective config of a workdir: the one call commands make (through BaseCommand.loadConfig). */
export async function loadConfig(opts: LoadConfigOptions): Promise<PageserverConfig> {
  return (await inspectConfig(opts)).config
}

/** The effective config plus where each value came from (for `config show` and `init`). */
export async function inspectConfig(opts: LoadConfigOptions): Promise<LoadedConfig> {
  const workdir = resolve(opts.workdir)
  const configPath = join(workdir, CONFIG_FILE_NAME)
  const fileText = await readConfigFile(configPath)
  return resolveConfig({ workdir, configPath, fileText, overrides: opts.overrides ?? [], env: opts.env ?? {} })
}

export interface ResolveConfigInput {
  /** Absolute workdir. */
  readonly workdir: string
  readonly configPath: string
  /** Text of pageserver.toml, or null when there is no file. */
  readonly fileText: string | null
  readonly overrides: readonly string[]
  readonly env: Readonly<Record<string, string | undefined>>
}

/** The pure part of loading: texts in, frozen config out (no file system). */
export function resolveConfig(input: ResolveConfigInput): LoadedConfig {
  if (input.overrides.length > CONFIG_OVERRIDES_MAX) {
    throw new UsageError('CONFIG_TOO_LARGE', `${input.overrides.length} -c overrides given`, {
      hint: `Give at most ${CONFIG_OVERRIDES_MAX} -c overrides; put the rest in pageserver.toml.`,
    })
  }
  const docs: Document[] = []
  if (input.fileText !== null) {
    docs.push({ table: parseTomlDocument(input.fileText, input.configPath), where: input.configPath, origin: 'file' })
  }
  for (const fragment of input.overrides) {
    docs.push({ table: parseOverride(fragment), where: overrideLabel(fragment), origin: 'override' })
  }

  const settings = new Map<string, Setting>()
  const overrideTable = Object.create(null) as RawTable
  for (const doc of docs) {
    checkKnownKeys(doc)
    const table = expandAliases(doc, input)
    for (const [k, raw] of Object.entries(table)) {
      settings.set(k, { raw, where: doc.where, origin: doc.origin })
      if (doc.origin === 'override') overrideTable[k] = raw
    }
  }

  const values: Record<string, unknown> = { workdir: input.workdir }
  const origins: Record<string, ConfigOrigin> = {}
  for (const entry of KEY_ENTRIES) {
    const s = settings.get(entry.toml)
    const ctx: ValueContext = { key: entry.toml, where: s?.where ?? null, workdir: input.workdir, env: input.env }
    origins[entry.toml] = s?.origin ?? 'default'
    const raw = s !== undefined ? s.raw : entry.default
    values[entry.field] = raw === null ? null : entry.kind.parse(raw, ctx)
  }
  const config = values as PageserverConfig
  checkCrossKey(config, settings)
  return deepFreeze({
    config,
    configPath: input.configPath,
    fileFound: input.fileText !== null,
    origins,
    overrideTable,
  })
}

/** Keys that other tools accept but this one does not, with what to do instead. */
const FOREIGN_KEY_HINTS: Readonly<Record<string, string>> = {
  workdir: 'The workdir is not a config key: use -D/--workdir or PAGESERVER_WORKDIR.',
  tenant_config:
    'Tenant settings (checkpoint_distance, gc_horizon, pitr_interval, ...) are top-level keys here; move them out of [tenant_config].',
}

function checkKnownKeys(doc: Document): void {
  for (const k of Object.keys(doc.table)) {
    if (KNOWN_KEYS.includes(k)) continue
    const guess = closestKey(k, KNOWN_KEYS)
    const hint =
      FOREIGN_KEY_HINTS[k] ??
      (guess !== null
        ? `Did you mean ${guess}?`
        : 'See .neon.example/pageserver.toml or the file written by `pageserver init` for every known key.')
    throw new UsageError('CONFIG_UNKNOWN_KEY', `unknown config key ${k} (in ${doc.where})`, {
      hint,
      details: { key: k, where: doc.where, suggestion: guess },
    })
  }
}

/** Replaces alias keys by their targets within one document; explicit targets in the same document win. */
function expandAliases(doc: Document, input: ResolveConfigInput): RawTable {
  const out = Object.create(null) as RawTable
  for (const [k, v] of Object.entries(doc.table)) out[k] = v
  for (const alias of ALIAS_ENTRIES) {
    if (!(alias.toml in out)) continue
    const ctx: ValueContext = { key: alias.toml, where: doc.where, workdir: input.workdir, env: input.env }
    const value = alias.kind.parse(out[alias.toml], ctx)
    delete out[alias.toml]
    for (const target of alias.targets) if (!(target in doc.table)) out[target] = value
  }
  return out
}

function checkCrossKey(config: PageserverConfig, settings: ReadonlyMap<string, Setting>): void {
  const jwtKeys = (['pg_auth_type', 'http_auth_type'] as const).filter(
    (k) => (k === 'pg_auth_type' ? config.pgAuthType : config.httpAuthType) === 'NeonJWT',
  )
  if (jwtKeys.length > 0 && config.authValidationPublicKeyPath === null) {
    throw missingKey(
      'auth_validation_public_key_path',
      `when ${jwtKeys.join(' and ')} ${jwtKeys.length > 1 ? 'are' : 'is'} NeonJWT`,
      settings.get(jwtKeys[0]!)?.where ?? null,
      'Set auth_validation_public_key_path to the PEM file (or directory) of the Ed25519 keys that verify tokens.',
    )
  }
}

/**
 * Reads pageserver.toml; null when it does not exist. Checks that it is a regular file before opening it
 * (opening a FIFO would block forever) and its size before reading.
 */
export async function readConfigFile(path: string): Promise<string | null> {
  try {
    await statRegularFile(path, 'config file')
  } catch (err) {
    if (isNotFoundFsError(err)) return null
    if (err instanceof UsageError) throw new UsageError('CONFIG_UNREADABLE', err.message, { hint: unreadableHint, cause: err })
    throw unreadable(path, err)
  }
  let handle
  try {
    handle = await open(path, 'r')
  } catch (err) {
    if (isNotFoundFsError(err)) return null
    throw unreadable(path, err)
  }
  try {
    const st = await handle.stat()
    if (!st.isFile()) throw unreadable(path, new Error('not a regular file'))
    if (st.size > CONFIG_FILE_SIZE_MAX_BYTES) {
      throw new UsageError('CONFIG_TOO_LARGE', `${path} is ${st.size} bytes`, {
        hint: `A config file is at most ${CONFIG_FILE_SIZE_MAX_BYTES} bytes; check that this is the right file.`,
      })
    }
    const bytes = Buffer.alloc(st.size)
    const { bytesRead } = await handle.read(bytes, 0, st.size, 0)
    let text: string
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, bytesRead))
    } catch {
      throw new UsageError('CONFIG_SYNTAX', `${path} is not valid UTF-8`, { hint: 'Save the config file as UTF-8 text.' })
    }
    return text.startsWith('\uFEFF') ? text.slice(1) : text
  } catch (err) {
    if (err instanceof UsageError) throw err
    throw unreadable(path, err)
  } finally {
    await handle.close()
  }
}

const unreadableHint = 'Check that the workdir (-D/--workdir) is a directory and pageserver.toml is a readable file.'

function unreadable(path: string, err: unknown): UsageError {
  return new UsageError('CONFIG_UNREADABLE', `cannot read ${path}: ${messageOf(err)}`, { hint: unreadableHint, cause: err })
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value)) deepFreeze(v)
  }
  return value
}
