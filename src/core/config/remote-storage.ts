/**
 * The `remote_storage` table: where layer files and index_part.json are uploaded.
 *
 * As in Neon, the set of keys selects the backend (there is no `kind` key):
 *   local directory  { local_path }
 *   S3 (or MinIO...) { bucket_name, bucket_region, prefix_in_bucket?, endpoint? }
 *   Azure Blob       { container_name, storage_account?, container_region, prefix_in_container? }
 * plus, for every form, `concurrency_limit` (100) and `timeout` (120 s). Keys of two forms at once are an
 * error naming them. Credentials are never read from the file: S3 takes AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) and Azure takes AZURE_STORAGE_ACCESS_KEY (and
 * AZURE_STORAGE_ACCOUNT when `storage_account` is absent) from the environment the caller passes in, and
 * they are held as `Secret`s so no printing path can show them.
 */
import { UsageError } from '../lib/errors.js'
import { badValue, missingKey, whereSuffix, wrongType, type ValueContext } from './errors.js'
import { durationKind, intKind, pathKind, stringKind, type Kind, type ShownValue } from './kinds.js'
import { CREDENTIAL_KEY_NAMES, Secret } from './secret.js'
import { closestKey } from './suggest.js'

export interface RemoteStorageCommon {
  /** Most requests in flight at once against the backend. */
  readonly concurrencyLimit: number
  /** Deadline of one request (upload, download, list, delete). */
  readonly timeoutMs: number
}

export interface LocalRemoteStorage extends RemoteStorageCommon {
  readonly kind: 'local'
  /** Absolute path of the directory that plays the bucket. */
  readonly localPath: string
}

export interface S3Credentials {
  readonly accessKeyId: Secret
  readonly secretAccessKey: Secret
  readonly sessionToken: Secret | null
}

export interface S3RemoteStorage extends RemoteStorageCommon {
  readonly kind: 's3'
  readonly bucketName: string
  readonly bucketRegion: string
  readonly prefixInBucket: string | null
  /** A custom endpoint URL (MinIO, s3rver, radosgw); null means AWS. */
  readonly endpoint: string | null
  /** From AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; null lets the SDK find credentials itself. */
  readonly credentials: S3Credentials | null
}

export interface AzureRemoteStorage extends RemoteStorageCommon {
  readonly kind: 'azure'
  readonly containerName: string
  readonly storageAccount: string
  readonly containerRegion: string
  readonly prefixInContainer: string | null
  /** From AZURE_STORAGE_ACCESS_KEY; null lets the SDK use its default credentials. */
  readonly accessKey: Secret | null
}

export type RemoteStorageConfig = LocalRemoteStorage | S3RemoteStorage | AzureRemoteStorage

export const REMOTE_STORAGE_FORMS = {
  local: { title: 'local directory', keys: ['local_path'], required: ['local_path'] },
  s3: {
    title: 'S3',
    keys: ['bucket_name', 'bucket_region', 'prefix_in_bucket', 'endpoint'],
    required: ['bucket_name', 'bucket_region'],
  },
  azure: {
    title: 'Azure Blob',
    keys: ['container_name', 'storage_account', 'container_region', 'prefix_in_container'],
    required: ['container_name', 'container_region'],
  },
} as const satisfies Record<RemoteStorageConfig['kind'], { title: string; keys: readonly string[]; required: readonly string[] }>

type FormName = keyof typeof REMOTE_STORAGE_FORMS

const COMMON_KEYS = ['concurrency_limit', 'timeout'] as const
export const REMOTE_STORAGE_TIMEOUT_DEFAULT_MS = 120_000
export const REMOTE_STORAGE_CONCURRENCY_DEFAULT = 100
/** More parallel requests than this only hurts (and exhausts file descriptors). */
export const REMOTE_STORAGE_CONCURRENCY_MAX = 10_000


/** Environment variables that hold credentials (the CLI passes process.env). */
export const CREDENTIAL_ENV = {
  awsAccessKeyId: 'AWS_ACCESS_KEY_ID',
  awsSecretAccessKey: 'AWS_SECRET_ACCESS_KEY',
  awsSessionToken: 'AWS_SESSION_TOKEN',
  azureAccessKey: 'AZURE_STORAGE_ACCESS_KEY',
  azureAccount: 'AZURE_STORAGE_ACCOUNT',
} as const

const ALL_KEYS: readonly string[] = [...Object.values(REMOTE_STORAGE_FORMS).flatMap((f) => f.keys), ...COMMON_KEYS]

function isTable(raw: unknown): raw is Record<string, unknown> {
  return typeof raw === 'object' && raw !== null && !Array.isArray(raw) && !(raw instanceof Date)
}

function envValue(env: ValueContext['env'], name: string): string | null {
  const v = env[name]
  return v === undefined || v === '' ? null : v
}

const urlKind: Kind<string> = {
  expected: 'an http:// or https:// URL',
  parse(raw, ctx) {
    const text = stringKind({ expected: urlKind.expected }).parse(raw, ctx)
    let url: URL
    try {
      url = new URL(text)
    } catch {
      throw badValue(ctx, `${JSON.stringify(text)} is not a URL`, 'Write a URL such as "http://127.0.0.1:9000".')
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw badValue(ctx, `${JSON.stringify(text)} is not an http or https URL`, 'Write a URL such as "http://127.0.0.1:9000".')
    }
    return text
  },
  display: (s) => s,
}

const prefixKind = stringKind({ allowEmpty: true, expected: 'a key prefix such as "pageserver/"' })
const nameKind = stringKind()
const concurrencyKind = intKind({ min: 1, max: REMOTE_STORAGE_CONCURRENCY_MAX })
const timeoutKind = durationKind({ minMs: 1 })

function selectForm(table: Record<string, unknown>, ctx: ValueContext): FormName {
  const present = (Object.keys(REMOTE_STORAGE_FORMS) as FormName[]).filter((form) =>
    REMOTE_STORAGE_FORMS[form].keys.some((k) => k in table),
  )
  if (present.length > 1) {
    const parts = present.map((form) => {
      const keys = REMOTE_STORAGE_FORMS[form].keys.filter((k) => k in table)
      return `the ${REMOTE_STORAGE_FORMS[form].title} form (${keys.join(', ')})`
    })
    throw new UsageError('CONFIG_REMOTE_STORAGE_FORMS', `${ctx.key} mixes ${parts.join(' and ')}${whereSuffix(ctx.where)}`, {
      hint: 'Keep the keys of one backend only: local_path, or bucket_name/bucket_region/..., or container_name/container_region/...',
      details: { key: ctx.key, where: ctx.where, forms: present },
    })
  }
  if (present.length === 0) {
    throw missingKey(`${ctx.key}.local_path`, `(or bucket_name, or container_name) to choose a remote storage backend`, ctx.where,
      'Write remote_storage = { local_path = "/some/path/" }, or the S3 or Azure form; see .neon.example/pageserver.toml.')
  }
  const form = present[0]!
  for (const k of REMOTE_STORAGE_FORMS[form].required) {
    if (!(k in table)) {
      throw missingKey(`${ctx.key}.${k}`, `for ${REMOTE_STORAGE_FORMS[form].title} remote storage`, ctx.where,
        `Add ${k} to ${ctx.key} (required keys: ${REMOTE_STORAGE_FORMS[form].required.join(', ')}).`)
    }
  }
  return form
}

function checkKeys(table: Record<string, unknown>, ctx: ValueContext): void {
  for (const k of Object.keys(table)) {
    if (ALL_KEYS.includes(k)) continue
    if (CREDENTIAL_KEY_NAMES.has(k.toLowerCase())) {
      throw new UsageError('CONFIG_SECRET_IN_FILE', `${ctx.key}.${k}: credentials are not read from the config${whereSuffix(ctx.where)}`, {
        hint: `Remove ${k} and set ${CREDENTIAL_ENV.awsAccessKeyId}/${CREDENTIAL_ENV.awsSecretAccessKey} (S3) or ${CREDENTIAL_ENV.azureAccessKey} (Azure) in the environment.`,
        details: { key: `${ctx.key}.${k}`, where: ctx.where },
      })
    }
    const guess = closestKey(k, ALL_KEYS)
    throw new UsageError('CONFIG_UNKNOWN_KEY', `unknown key ${ctx.key}.${k}${whereSuffix(ctx.where)}`, {
      hint: guess !== null ? `Did you mean ${ctx.key}.${guess}?` : `Known keys of ${ctx.key}: ${ALL_KEYS.join(', ')}.`,
      details: { key: `${ctx.key}.${k}`, where: ctx.where, suggestion: guess },
    })
  }
}

function s3Credentials(ctx: ValueContext): S3Credentials | null {
  const id = envValue(ctx.env, CREDENTIAL_ENV.awsAccessKeyId)
  const secret = envValue(ctx.env, CREDENTIAL_ENV.awsSecretAccessKey)
  if (id === null && secret === null) return null
  if (id === null || secret === null) {
    const missing = id === null ? CREDENTIAL_ENV.awsAccessKeyId : CREDENTIAL_ENV.awsSecretAccessKey
    throw new UsageError('CONFIG_INCOMPLETE_CREDENTIALS', `${missing} is not set, but its partner is`, {
      hint: `Set both ${CREDENTIAL_ENV.awsAccessKeyId} and ${CREDENTIAL_ENV.awsSecretAccessKey}, or neither.`,
      details: { key: ctx.key, env: missing },
    })
  }
  const token = envValue(ctx.env, CREDENTIAL_ENV.awsSessionToken)
  return { accessKeyId: new Secret(id), secretAccessKey: new Secret(secret), sessionToken: token === null ? null : new Secret(token) }
}

function sub<T>(kind: Kind<T>, table: Record<string, unknown>, key: string, ctx: ValueContext): T {
  return kind.parse(table[key], { ...ctx, key: `${ctx.key}.${key}` })
}

function optionalSub<T>(kind: Kind<T>, table: Record<string, unknown>, key: string, ctx: ValueContext): T | null {
  return key in table ? sub(kind, table, key, ctx) : null
}

export const remoteStorageKind: Kind<RemoteStorageConfig> = {
  expected: 'a table such as { local_path = "/some/path/" }',
  parse(raw, ctx) {
    if (!isTable(raw)) throw wrongType(ctx, remoteStorageKind.expected, raw)
    checkKeys(raw, ctx)
    const form = selectForm(raw, ctx)
    const common: RemoteStorageCommon = {
      concurrencyLimit: optionalSub(concurrencyKind, raw, 'concurrency_limit', ctx) ?? REMOTE_STORAGE_CONCURRENCY_DEFAULT,
      timeoutMs: optionalSub(timeoutKind, raw, 'timeout', ctx) ?? REMOTE_STORAGE_TIMEOUT_DEFAULT_MS,
    }
    switch (form) {
      case 'local':
        return { kind: 'local', localPath: sub(pathKind, raw, 'local_path', ctx), ...common }
      case 's3':
        return {
          kind: 's3',
          bucketName: sub(nameKind, raw, 'bucket_name', ctx),
          bucketRegion: sub(nameKind, raw, 'bucket_region', ctx),
          prefixInBucket: optionalSub(prefixKind, raw, 'prefix_in_bucket', ctx),
          endpoint: optionalSub(urlKind, raw, 'endpoint', ctx),
          credentials: s3Credentials(ctx),
          ...common,
        }
      case 'azure': {
        const account = optionalSub(nameKind, raw, 'storage_account', ctx) ?? envValue(ctx.env, CREDENTIAL_ENV.azureAccount)
        if (account === null) {
          throw missingKey(`${ctx.key}.storage_account`, 'for Azure Blob remote storage', ctx.where,
            `Add storage_account to ${ctx.key}, or set ${CREDENTIAL_ENV.azureAccount} in the environment.`)
        }
        const key = envValue(ctx.env, CREDENTIAL_ENV.azureAccessKey)
        return {
          kind: 'azure',
          containerName: sub(nameKind, raw, 'container_name', ctx),
          storageAccount: account,
          containerRegion: sub(nameKind, raw, 'container_region', ctx),
          prefixInContainer: optionalSub(prefixKind, raw, 'prefix_in_container', ctx),
          accessKey: key === null ? null : new Secret(key),
          ...common,
        }
      }
    }
  },
  display(rs) {
    const out: Record<string, ShownValue> = {}
    switch (rs.kind) {
      case 'local':
        out.local_path = rs.localPath
        break
      case 's3':
        out.bucket_name = rs.bucketName
        out.bucket_region = rs.bucketRegion
        if (rs.prefixInBucket !== null) out.prefix_in_bucket = rs.prefixInBucket
        if (rs.endpoint !== null) out.endpoint = rs.endpoint
        break
      case 'azure':
        out.container_name = rs.containerName
        out.storage_account = rs.storageAccount
        out.container_region = rs.containerRegion
        if (rs.prefixInContainer !== null) out.prefix_in_container = rs.prefixInContainer
        break
    }
    out.concurrency_limit = rs.concurrencyLimit
    out.timeout = timeoutKind.display(rs.timeoutMs)
    return out
  },
}

/** The environment variables whose values this remote storage config holds (for "<redacted>" lines). */
export function credentialSources(rs: RemoteStorageConfig): string[] {
  if (rs.kind === 's3' && rs.credentials !== null) {
    const names: string[] = [CREDENTIAL_ENV.awsAccessKeyId, CREDENTIAL_ENV.awsSecretAccessKey]
    if (rs.credentials.sessionToken !== null) names.push(CREDENTIAL_ENV.awsSessionToken)
    return names
  }
  if (rs.kind === 'azure' && rs.accessKey !== null) return [CREDENTIAL_ENV.azureAccessKey]
  return []
}
