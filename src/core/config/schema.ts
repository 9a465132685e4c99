/**
 * The config schema: one table that is the single source of truth for every `pageserver.toml` key.
 *
 * Each entry gives the TOML name, the camelCase field of the typed config (units last), the value kind
 * (parser, limits, display), the default as a TOML value, and a one-paragraph doc. Everything else is
 * derived from it: validation in load.ts, the `PageserverConfig` type below, the commented template that
 * `init` writes (template.ts) and the `config show` output (show.ts). Adding a key is adding one entry.
 *
 * Keys are top-level, as in Neon's pageserver.toml of 2021-2024 (Neon later moved the per-tenant ones into
 * `[tenant_config]`). Unlike Neon, an unknown key is an error, not a warning: a typo must not silently fall
 * back to a default. Defaults follow Neon's (libs/pageserver_api/src/config.rs) where Neon has the key.
 */
import { durationKind, enumKind, intKind, addressKind, argvKind, boolKind, pathKind, sizeKind, type Kind, type ShownValue } from './kinds.js'
import { remoteStorageKind, type RemoteStorageConfig } from './remote-storage.js'

export const AUTH_TYPES = ['Trust', 'NeonJWT'] as const
export type AuthType = (typeof AUTH_TYPES)[number]

/** Most WAL redo worker processes in the pool. */
export const WAL_REDO_WORKERS_MAX = 64
/** wal_redo_max_processes at most: a typo must not allow a fork bomb. */
export const WAL_REDO_MAX_PROCESSES_MAX = 4096
/** Most pages in the page cache (128 GiB of 8 KiB pages). */
export const PAGE_CACHE_PAGES_MAX = 16 * 1024 * 1024

export interface KeyDef<F extends string, V> {
  readonly type: 'key'
  readonly toml: string
  readonly field: F
  readonly group: string
  readonly kind: Kind<NonNullable<V>>
  /** The default as a TOML value; null for an optional key that is unset by default. */
  readonly default: ShownValue | null
  /** Values shown (commented out) in the template for optional keys. */
  readonly examples: readonly ShownValue[]
  readonly doc: string
  /** Type-level only: the type of the field in PageserverConfig. */
  readonly __value?: V
}

/** A key that only sets other keys (`auth_type` sets `pg_auth_type` and `http_auth_type`). */
export interface AliasDef {
  readonly type: 'alias'
  readonly toml: string
  readonly group: string
  readonly kind: Kind<string>
  readonly targets: readonly string[]
  readonly doc: string
}

function key<F extends string, T>(d: { toml: string; field: F; group: string; kind: Kind<T>; default: ShownValue; doc: string }): KeyDef<F, T> {
  return { type: 'key', examples: [], ...d, kind: d.kind as Kind<NonNullable<T>> }
}

function optionalKey<F extends string, T>(d: {
  toml: string
  field: F
  group: string
  kind: Kind<T>
  examples: readonly ShownValue[]
  doc: string
}): KeyDef<F, T | null> {
  return { type: 'key', default: null, ...d, kind: d.kind as Kind<NonNullable<T>> }
}

const G_LISTEN = 'Listeners and authentication'
const G_INGEST = 'WAL ingest, checkpoints and memory'
const G_COMPACT = 'Compaction and image layers'
const G_GC = 'Garbage collection and retention'
const G_REDO = 'WAL redo and PostgreSQL binaries'
const G_REMOTE = 'Remote storage'

const authKind = enumKind(AUTH_TYPES)

export const CONFIG_ENTRIES = [
  key({
    toml: 'listen_pg_addr', field: 'listenPgAddr', group: G_LISTEN, kind: addressKind, default: '127.0.0.1:64000',
    doc: 'Address of the page service (libpq protocol: pagestream, basebackup, fullbackup) as host:port. Port 0 lets the OS pick a free port.',
  }),
  key({
    toml: 'listen_http_addr', field: 'listenHttpAddr', group: G_LISTEN, kind: addressKind, default: '127.0.0.1:9898',
    doc: 'Address of the HTTP management API and the /metrics endpoint as host:port.',
  }),
  {
    type: 'alias', toml: 'auth_type', group: G_LISTEN, kind: authKind, targets: ['pg_auth_type', 'http_auth_type'],
    doc: 'Shorthand that sets both pg_auth_type and http_auth_type; a pg_auth_type or http_auth_type in the same file or -c fragment wins over it.',
  } satisfies AliasDef,
  key({
    toml: 'page_service_max_connections', field: 'pageServiceMaxConnections', group: G_LISTEN, kind: intKind({ min: 1, max: 100_000 }), default: 1000,
    doc: 'Most page service connections open at once. At the limit, the oldest connection still logging in is closed to make room for a new one; when none is, the new one is refused with SQLSTATE 53300 (too_many_connections), as PostgreSQL refuses past max_connections. Not a Neon key.',
  }),
  key({
    toml: 'page_service_idle_timeout', field: 'pageServiceIdleTimeoutMs', group: G_LISTEN, kind: durationKind({ minMs: 1000 }), default: '10m',
    doc: 'A page service connection on which nothing is read or written for this long is closed (Neon\'s fixed read timeout is 10 minutes; computes reconnect). Keep it above wait_lsn_timeout, or a client whose only request waits for WAL is cut off first.',
  }),
  key({
    toml: 'pg_auth_type', field: 'pgAuthType', group: G_LISTEN, kind: authKind, default: 'Trust',
    doc: 'Authentication of page service connections: "Trust" accepts everyone, "NeonJWT" requires an EdDSA-signed JWT as the password, checked against auth_validation_public_key_path.',
  }),
  key({
    toml: 'http_auth_type', field: 'httpAuthType', group: G_LISTEN, kind: authKind, default: 'Trust',
    doc: 'Authentication of the HTTP management API: "Trust" or "NeonJWT" (a bearer token in the Authorization header).',
  }),
  optionalKey({
    toml: 'auth_validation_public_key_path', field: 'authValidationPublicKeyPath', group: G_LISTEN, kind: pathKind,
    examples: ['auth_public_key.pem'],
    doc: 'PEM file, or directory of PEM files (symbolic links followed), with the Ed25519 public keys that verify JWTs. Required when either auth type is NeonJWT. Relative to the workdir. Read at start, and again on SIGHUP to serve or POST /v1/reload_auth_validation_keys (a failed reload keeps the old keys).',
  }),

  key({
    toml: 'checkpoint_distance', field: 'checkpointDistanceBytes', group: G_INGEST, kind: sizeKind({ minBytes: 1 }), default: '256MiB',
    doc: 'Freeze the open in-memory layer and flush it to an L0 delta layer file once it spans this much WAL or holds this many bytes. (Neon also uses it as the target size of L1 delta layers; this version has no compaction yet, so no L1 layers.)',
  }),
  key({
    toml: 'checkpoint_timeout', field: 'checkpointTimeoutMs', group: G_INGEST, kind: durationKind({ minMs: 1 }), default: '10m',
    doc: 'Flush an open in-memory layer that holds data and was opened this long ago, even if it is small, so idle timelines become durable.',
  }),
  key({
    toml: 'max_in_memory_layers_bytes', field: 'maxInMemoryLayersBytes', group: G_INGEST, kind: sizeKind({ minBytes: 1 }), default: '512MiB',
    doc: 'Ceiling on the bytes held by open and frozen in-memory layers of all timelines together. Above it the open layer of the timeline holding the oldest unflushed WAL is frozen early, and ingest waits for flushes (backpressure).',
  }),
  key({
    toml: 'wait_lsn_timeout', field: 'waitLsnTimeoutMs', group: G_INGEST, kind: durationKind({ minMs: 1 }), default: '300s',
    doc: 'How long a GetPage@LSN or basebackup request waits for WAL up to its LSN to arrive before failing.',
  }),
  key({
    toml: 'no_sync', field: 'noSync', group: G_INGEST, kind: boolKind, default: false,
    doc: 'Skip fsync of layer files, metadata and directories. Only for tests: a crash can then lose data that was reported durable.',
  }),

  key({
    toml: 'compaction_period', field: 'compactionPeriodMs', group: G_COMPACT, kind: durationKind(), default: '20s',
    doc: 'Interval of the background compaction loop of each tenant. 0 disables automatic compaction. Not used yet: this version has no compaction (layers accumulate as L0 deltas); the key is accepted so that Neon configs load.',
  }),
  key({
    toml: 'compaction_threshold', field: 'compactionThreshold', group: G_COMPACT, kind: intKind({ min: 1, max: 10_000 }), default: 10,
    doc: 'Number of L0 delta layers that triggers compacting them into L1 delta layers. Not used yet (no compaction in this version).',
  }),
  key({
    toml: 'compaction_target_size', field: 'compactionTargetSizeBytes', group: G_COMPACT, kind: sizeKind({ minBytes: 1 }), default: '128MiB',
    doc: 'Size of a key-space partition when creating image layers; roughly the size of one image layer file. Not used yet (no compaction in this version).',
  }),
  key({
    toml: 'image_creation_threshold', field: 'imageCreationThreshold', group: G_COMPACT, kind: intKind({ min: 1, max: 10_000 }), default: 3,
    doc: 'Number of delta layers stacked above the newest image of a key range that makes compaction write a new image layer for it. Not used yet (no compaction in this version).',
  }),

  key({
    toml: 'gc_period', field: 'gcPeriodMs', group: G_GC, kind: durationKind(), default: '1h',
    doc: 'Interval of the garbage collection loop of each tenant. 0 disables automatic GC. Not used yet: this version removes no layer files (every page version is kept); the key is accepted so that Neon configs load.',
  }),
  key({
    toml: 'gc_horizon', field: 'gcHorizonBytes', group: G_GC, kind: sizeKind(), default: '64MiB',
    doc: 'Keep every page version within this much WAL of the end of each timeline. 0 disables automatic GC. Not used yet (no GC in this version).',
  }),
  key({
    toml: 'pitr_interval', field: 'pitrIntervalMs', group: G_GC, kind: durationKind(), default: '7d',
    doc: 'Keep every page version for this long (point-in-time recovery window). When set above 0 it decides the GC cutoff, and gc_horizon only applies when the time cannot be mapped to an LSN. Not used yet (no GC in this version).',
  }),

  key({
    toml: 'wal_redo_timeout', field: 'walRedoTimeoutMs', group: G_REDO, kind: durationKind({ minMs: 1 }), default: '60s',
    doc: 'Deadline of one page reconstruction in a WAL redo worker; a worker that misses it is killed and replaced.',
  }),
  key({
    toml: 'wal_redo_workers', field: 'walRedoWorkers', group: G_REDO, kind: intKind({ min: 1, max: WAL_REDO_WORKERS_MAX }), default: 2,
    doc: 'WAL redo worker processes of one tenant\'s pool at most (each tenant has its own pool, so that one tenant\'s redo never waits behind another\'s); wal_redo_max_processes caps them all together.',
  }),
  key({
    toml: 'wal_redo_max_processes', field: 'walRedoMaxProcesses', group: G_REDO, kind: intKind({ min: 1, max: WAL_REDO_MAX_PROCESSES_MAX }), default: 16,
    doc: 'WAL redo worker processes of the whole server at most, all tenants together (each is a Node process of tens of MiB). At the cap a tenant with no worker gets one from another tenant: an idle worker, else one of a tenant that runs several, once that worker has served its tenant for a second; its requests wait meanwhile, up to wal_redo_timeout.',
  }),
  key({
    toml: 'wal_redo_idle_timeout', field: 'walRedoIdleTimeoutMs', group: G_REDO, kind: durationKind({ minMs: 1 }), default: '180s',
    doc: 'Stop a WAL redo worker that has had no request for this long; it is started again on demand.',
  }),
  optionalKey({
    toml: 'wal_redo_command', field: 'walRedoCommand', group: G_REDO, kind: argvKind,
    examples: [['postgres', '--wal-redo']],
    doc: 'A custom WAL redo worker speaking the walredo pipe protocol, as program and arguments (e.g. Neon\'s patched postgres). It is sent relation pages; CLOG and MultiXact pages are then redone inside the page server, as Neon\'s does. Unset: the built-in TypeScript redo worker, which does both.',
  }),
  optionalKey({
    toml: 'pg_distrib_dir', field: 'pgDistribDir', group: G_REDO, kind: pathKind,
    examples: ['/usr/lib/postgresql'],
    doc: 'Directory of the PostgreSQL 15 installation (a bin directory, or Neon\'s layout with v15/bin); when set, the only place looked at. Unset: PGBIN, then /usr/lib/postgresql/15/bin, then pg_config --bindir.',
  }),
  key({
    toml: 'page_cache_size', field: 'pageCacheSizePages', group: G_REDO, kind: intKind({ min: 1, max: PAGE_CACHE_PAGES_MAX }), default: 8192,
    doc: 'Pages (8 KiB each) of the read caches, half for served pages (images and pages rebuilt by redo), half for layer values and index blocks. Outside it: each timeline\'s cache of relation sizes and directories (at most 32 MiB) and each open layer file\'s last 16 index blocks.',
  }),

  optionalKey({
    toml: 'remote_storage', field: 'remoteStorage', group: G_REMOTE, kind: remoteStorageKind,
    examples: [
      { local_path: '/some/path/' },
      { bucket_name: 'my-bucket', bucket_region: 'eu-north-1', prefix_in_bucket: 'pageserver/', endpoint: 'http://127.0.0.1:9000' },
      { container_name: 'my-container', storage_account: 'myaccount', container_region: 'westeurope', prefix_in_container: 'pageserver/' },
    ],
    doc: 'Durable copy of layer files and index_part.json, in one of three forms chosen by its keys: a local directory (local_path), S3 (bucket_name, bucket_region, prefix_in_bucket, endpoint) or Azure Blob (container_name, storage_account, container_region, prefix_in_container). Every form also takes concurrency_limit (100) and timeout ("120s"). Credentials come only from the environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for S3, AZURE_STORAGE_ACCESS_KEY for Azure. Unset: no uploads.',
  }),
] as const

export type ConfigEntry = (typeof CONFIG_ENTRIES)[number]
type KeyEntry = Extract<ConfigEntry, { type: 'key' }>

/** Every value of `pageserver.toml`, typed, with units last in the names. */
export type ConfigValues = {
  readonly [D in KeyEntry as D['field']]: D extends KeyDef<string, infer V> ? V : never
}

/** The effective, frozen config: file + `-c` overrides + defaults, validated. */
export type PageserverConfig = ConfigValues & {
  /** Absolute path of the working directory (from -D/--workdir; not a config key). */
  readonly workdir: string
}

export type { RemoteStorageConfig }

export const KEY_ENTRIES: readonly KeyDef<string, unknown>[] = CONFIG_ENTRIES.filter(
  (e): e is KeyEntry => e.type === 'key',
) as readonly KeyDef<string, unknown>[]
export const ALIAS_ENTRIES: readonly AliasDef[] = CONFIG_ENTRIES.filter((e): e is Extract<ConfigEntry, { type: 'alias' }> => e.type === 'alias')
export const KNOWN_KEYS: readonly string[] = CONFIG_ENTRIES.map((e) => e.toml)
