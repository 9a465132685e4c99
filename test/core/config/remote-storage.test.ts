import { inspect } from 'node:util'
import { describe, expect, it } from 'vitest'
import { redactedConfigJson, renderEffectiveToml, resolveConfig, Secret, type LoadedConfig } from '../../../src/core/config/index.js'
import { errorOf } from '../../support/errors.js'

const WORKDIR = '/srv/ps'

function load(overrides: string[], env: Record<string, string> = {}, fileText: string | null = null): LoadedConfig {
  return resolveConfig({ workdir: WORKDIR, configPath: `${WORKDIR}/pageserver.toml`, fileText, overrides, env })
}

const AWS_ENV = { AWS_ACCESS_KEY_ID: 'AKIAEXAMPLEKEY', AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCY' }
const AZURE_ENV = { AZURE_STORAGE_ACCESS_KEY: 'azure-account-key-value==' }

describe('remote_storage forms', () => {
  it('selects the local form by local_path (relative to the workdir)', () => {
    expect(load(["remote_storage={local_path='/some/path/'}"]).config.remoteStorage).toEqual({
      kind: 'local',
      localPath: '/some/path',
      concurrencyLimit: 100,
      timeoutMs: 120_000,
    })
    expect(load(["remote_storage={local_path='remote'}"]).config.remoteStorage).toMatchObject({ localPath: '/srv/ps/remote' })
  })

  it('selects S3 by bucket_name and bucket_region, with optional prefix, endpoint, concurrency and timeout', () => {
    const rs = load([
      "remote_storage={bucket_name='b', bucket_region='eu-north-1', prefix_in_bucket='/ps/', endpoint='http://127.0.0.1:9000', concurrency_limit=8, timeout='30s'}",
    ]).config.remoteStorage
    expect(rs).toEqual({
      kind: 's3',
      bucketName: 'b',
      bucketRegion: 'eu-north-1',
      prefixInBucket: '/ps/',
      endpoint: 'http://127.0.0.1:9000',
      credentials: null,
      concurrencyLimit: 8,
      timeoutMs: 30_000,
    })
  })

  it('selects Azure by container_name; the account may come from AZURE_STORAGE_ACCOUNT', () => {
    const text = "remote_storage={container_name='c', storage_account='acct', container_region='westeurope', prefix_in_container='ps/'}"
    expect(load([text]).config.remoteStorage).toEqual({
      kind: 'azure',
      containerName: 'c',
      storageAccount: 'acct',
      containerRegion: 'westeurope',
      prefixInContainer: 'ps/',
      accessKey: null,
      concurrencyLimit: 100,
      timeoutMs: 120_000,
    })
    const fromEnv = load(["remote_storage={container_name='c', container_region='r'}"], { AZURE_STORAGE_ACCOUNT: 'envacct' })
    expect(fromEnv.config.remoteStorage).toMatchObject({ storageAccount: 'envacct' })
    const e = errorOf(() => load(["remote_storage={container_name='c', container_region='r'}"]))
    expect(e.code).toBe('CONFIG_MISSING_KEY')
    expect(e.message).toContain('remote_storage.storage_account')
    expect(e.hint).toContain('AZURE_STORAGE_ACCOUNT')
  })

  it('rejects two forms at once, naming the offending keys', () => {
    const e = errorOf(() => load(["remote_storage={local_path='/x', bucket_name='b', bucket_region='r'}"]))
    expect(e.code).toBe('CONFIG_REMOTE_STORAGE_FORMS')
    expect(e.message).toBe(
      'remote_storage mixes the local directory form (local_path) and the S3 form (bucket_name, bucket_region) (in -c "remote_storage={local_path=\'/x\', bucket_name=\'b\', bucket_region=\'r\'}")',
    )
    const az = errorOf(() => load(['remote_storage={bucket_name="b", bucket_region="r", container_name="c"}']))
    expect(az.code).toBe('CONFIG_REMOTE_STORAGE_FORMS')
    expect(az.message).toContain('(container_name)')
  })

  it('requires the keys of the chosen form, and some form', () => {
    const e = errorOf(() => load(["remote_storage={bucket_name='b'}"]))
    expect(e.code).toBe('CONFIG_MISSING_KEY')
    expect(e.message).toBe('remote_storage.bucket_region is required for S3 remote storage (in -c "remote_storage={bucket_name=\'b\'}")')
    expect(errorOf(() => load(["remote_storage={container_name='c', storage_account='a'}"])).message).toContain('container_region')
    const none = errorOf(() => load(['remote_storage={timeout="5s"}']))
    expect(none.code).toBe('CONFIG_MISSING_KEY')
    expect(none.message).toContain('remote_storage.local_path')
  })

  it('checks types and unknown keys inside the table', () => {
    expect(errorOf(() => load(['remote_storage={local_path=1}'])).message).toMatch(/^remote_storage\.local_path must be a path/)
    expect(errorOf(() => load(['remote_storage={local_path="/x", concurrency_limit=0}'])).message).toContain('remote_storage.concurrency_limit')
    expect(errorOf(() => load(['remote_storage={bucket_name="b", bucket_region="r", endpoint="ftp://x"}'])).message).toContain('remote_storage.endpoint')
    const u = errorOf(() => load(['remote_storage={local_path="/x", local_pth="/y"}']))
    expect(u.code).toBe('CONFIG_UNKNOWN_KEY')
    expect(u.message).toContain('remote_storage.local_pth')
    expect(u.hint).toBe('Did you mean remote_storage.local_path?')
  })

  it('refuses credentials in the file', () => {
    const e = errorOf(() => load([], {}, 'remote_storage = { bucket_name = "b", bucket_region = "r", secret_access_key = "s3cr3t" }'))
    expect(e.code).toBe('CONFIG_SECRET_IN_FILE')
    expect(e.message).not.toContain('s3cr3t')
    expect(e.hint).toContain('AWS_SECRET_ACCESS_KEY')
  })

  // The message names the -c fragment it comes from; it must not print the credential it refuses (nor one
  // in a fragment refused for another reason), since errors go to stderr, CI logs and `serve` logs.
  it('refuses credentials in a -c fragment without printing them', () => {
    for (const fragment of [
      "remote_storage={bucket_name='b', bucket_region='r', secret_access_key='s3cr3t'}",
      'remote_storage={bucket_name="b", bucket_region="r", "AWS_SECRET_ACCESS_KEY" = "s3cr3t"}',
      "remote_storage={container_name='c', storage_account='a', container_region='r', sas_token = 's3cr3t,more'}",
      "remote_storage={bucket_name='b', bucket_region='r', access_key=s3cr3t}",
      "remote_storage={bucket_name='b', bucket_region='r', secret_access_key='s3cr3t'",
      "remote_storage={bucket_name='b', bucket_region=42, secret_access_key='s3cr3t'}",
    ]) {
      const e = errorOf(() => load([fragment]))
      expect(e.code).toMatch(/^CONFIG_/)
      expect(e.message).not.toContain('s3cr3t')
      expect(JSON.stringify((e as { details?: unknown }).details ?? null)).not.toContain('s3cr3t')
    }
    const e = errorOf(() => load(["remote_storage={bucket_name='b', bucket_region='r', secret_access_key='s3cr3t'}"]))
    expect(e.code).toBe('CONFIG_SECRET_IN_FILE')
    expect(e.message).toContain('secret_access_key')
  })
})

describe('credentials', () => {
  const s3 = "remote_storage={bucket_name='b', bucket_region='r'}"
  const azure = "remote_storage={container_name='c', storage_account='a', container_region='r'}"

  it('come from the environment passed in', () => {
    const rs = load([s3], { ...AWS_ENV, AWS_SESSION_TOKEN: 'tok' }).config.remoteStorage
    if (rs?.kind !== 's3' || rs.credentials === null) throw new Error('expected S3 credentials')
    expect(rs.credentials.accessKeyId.reveal()).toBe(AWS_ENV.AWS_ACCESS_KEY_ID)
    expect(rs.credentials.secretAccessKey.reveal()).toBe(AWS_ENV.AWS_SECRET_ACCESS_KEY)
    expect(rs.credentials.sessionToken?.reveal()).toBe('tok')
    const az = load([azure], AZURE_ENV).config.remoteStorage
    if (az?.kind !== 'azure' || az.accessKey === null) throw new Error('expected an Azure key')
    expect(az.accessKey.reveal()).toBe(AZURE_ENV.AZURE_STORAGE_ACCESS_KEY)
  })

  it('are all-or-nothing for S3', () => {
    const e = errorOf(() => load([s3], { AWS_ACCESS_KEY_ID: 'only-the-id' }))
    expect(e.code).toBe('CONFIG_INCOMPLETE_CREDENTIALS')
    expect(e.message).toContain('AWS_SECRET_ACCESS_KEY')
    expect(e.message).not.toContain('only-the-id')
    // Irrelevant credentials do not matter for the local form.
    expect(load(["remote_storage={local_path='/x'}"], { AWS_ACCESS_KEY_ID: 'x' }).config.remoteStorage?.kind).toBe('local')
  })

  it('are redacted in JSON, text, inspect and the config show output', () => {
    const env = { ...AWS_ENV, ...AZURE_ENV }
    for (const form of [s3, azure]) {
      const loaded = load([form], env)
      const outputs = [
        JSON.stringify(loaded.config),
        JSON.stringify(redactedConfigJson(loaded.config)),
        inspect(loaded.config, { depth: 10 }),
        renderEffectiveToml(loaded),
      ]
      for (const out of outputs) {
        for (const secret of Object.values(env)) expect(out).not.toContain(secret)
        expect(out).toContain('<redacted>')
      }
    }
    const shown = renderEffectiveToml(load([s3], AWS_ENV))
    expect(shown).toContain('# AWS_ACCESS_KEY_ID = <redacted> (from the environment)')
    expect(shown).toContain('# AWS_SECRET_ACCESS_KEY = <redacted> (from the environment)')
  })

  it('Secret reveals only on request', () => {
    const s = new Secret('hunter2')
    expect(`${s}`).toBe('<redacted>')
    expect(JSON.stringify({ s })).toBe('{"s":"<redacted>"}')
    expect(inspect(s)).not.toContain('hunter2')
    expect(Object.keys(s)).toEqual([])
    expect(s.reveal()).toBe('hunter2')
  })
})
