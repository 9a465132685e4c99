import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parse } from 'smol-toml'
import { describe, expect, it } from 'vitest'
import {
  CONFIG_ENTRIES,
  configShowResult,
  renderConfigTemplate,
  renderEffectiveToml,
  resolveConfig,
  type LoadedConfig,
} from '../../../src/core/config/index.js'
import { REPO_ROOT } from '../../support/cli.js'

const WORKDIR = '/srv/ps'

function load(fileText: string | null, overrides: string[] = [], env: Record<string, string> = {}): LoadedConfig {
  return resolveConfig({ workdir: WORKDIR, configPath: `${WORKDIR}/pageserver.toml`, fileText, overrides, env })
}

describe('default template', () => {
  const template = renderConfigTemplate()

  it('is exactly .neon.example/pageserver.toml', async () => {
    const example = await readFile(join(REPO_ROOT, '.neon.example', 'pageserver.toml'), 'utf8')
    expect(template).toBe(example)
  })

  it('sets no key, so it loads to the defaults', () => {
    expect(Object.keys(parse(template))).toEqual([])
    const loaded = load(template)
    expect(loaded.fileFound).toBe(true)
    expect(loaded.config).toEqual(load(null).config)
  })

  it('documents every key with a commented line', () => {
    for (const entry of CONFIG_ENTRIES) {
      expect(template, entry.toml).toContain(`\n#${entry.toml} = `)
      expect(template, entry.toml).toContain(`# ${entry.doc.split(' ').slice(0, 3).join(' ')}`)
    }
  })

  it('has commented lines that each load when uncommented alone, defaults to the default value', () => {
    const defaults = load(null).config as unknown as Record<string, unknown>
    const lines = template.split('\n').filter((l) => /^#[a-z_]+ = /.test(l))
    expect(lines.length).toBeGreaterThanOrEqual(CONFIG_ENTRIES.length)
    for (const line of lines) {
      const key = line.slice(1, line.indexOf(' '))
      const entry = CONFIG_ENTRIES.find((e) => e.toml === key)!
      const config = load(line.slice(1)).config as unknown as Record<string, unknown>
      if (entry.type === 'key' && entry.default !== null) expect(config[entry.field], line).toEqual(defaults[entry.field])
      if (entry.type === 'key' && entry.default === null) expect(config[entry.field], line).not.toBeNull()
    }
  })

  it('keeps comment lines within 100 columns', () => {
    for (const line of template.split('\n')) if (line.startsWith('# ')) expect(line.length, line).toBeLessThanOrEqual(100)
  })
})

describe('template with chosen values', () => {
  it('writes chosen keys uncommented, and they load back', () => {
    const chosen = load(null, [
      'checkpoint_distance=1MiB',
      "remote_storage={local_path='/some/path/'}",
      'wal_redo_command=["postgres", "--wal-redo"]',
      'gc_horizon=18446744073',
    ]).overrideTable
    const text = renderConfigTemplate(chosen)
    expect(text).toContain('\ncheckpoint_distance = "1MiB"\n')
    expect(text).toContain('\nremote_storage = { local_path = "/some/path/" }\n')
    expect(text).toContain('\nwal_redo_command = ["postgres", "--wal-redo"]\n')
    expect(text).toContain('\ngc_horizon = 18446744073\n')
    expect(text).not.toContain('\n#checkpoint_distance = ')
    const config = load(text).config
    expect(config.checkpointDistanceBytes).toBe(1 << 20)
    expect(config.remoteStorage).toMatchObject({ kind: 'local', localPath: '/some/path' })
    expect(config.walRedoCommand).toEqual(['postgres', '--wal-redo'])
  })

  it('refuses an unknown chosen key (a bug in the caller)', () => {
    expect(() => renderConfigTemplate({ nope: 1 })).toThrow(/unknown chosen key nope/)
  })
})

describe('config show rendering', () => {
  const env = { AWS_ACCESS_KEY_ID: 'id-value', AWS_SECRET_ACCESS_KEY: 'secret-value' }
  const file = 'checkpoint_distance = "1MiB"\nremote_storage = { bucket_name = "b", bucket_region = "r", endpoint = "http://127.0.0.1:9000" }\n'
  const overrides = ['checkpoint_timeout=30s', 'wal_redo_command=["postgres", "--wal-redo"]', 'pg_distrib_dir=pg']

  it('prints valid TOML that loads back to the same config', () => {
    const loaded = load(file, overrides, env)
    const text = renderEffectiveToml(loaded)
    const again = load(text, [], env)
    expect(JSON.stringify(again.config)).toBe(JSON.stringify(loaded.config))
    expect(again.config).toEqual(loaded.config)
  })

  it('marks where each non-default value came from', () => {
    const text = renderEffectiveToml(load(file, overrides, env))
    expect(text).toContain('checkpoint_distance = 1048576  # file\n')
    expect(text).toContain('checkpoint_timeout = "30s"  # -c\n')
    expect(text).toContain('pg_distrib_dir = "/srv/ps/pg"  # -c\n')
    expect(text).toContain('gc_period = "1h"\n')
    expect(text).toContain('# auth_validation_public_key_path is not set\n')
    expect(text).toContain(
      'remote_storage = { bucket_name = "b", bucket_region = "r", endpoint = "http://127.0.0.1:9000", concurrency_limit = 100, timeout = "2m" }  # file\n',
    )
  })

  it('gives a JSON result with the typed config, origins and redacted secrets', () => {
    const result = configShowResult(load(file, overrides, env))
    const json = JSON.parse(JSON.stringify(result)) as typeof result
    expect(json).toMatchObject({ workdir: WORKDIR, configPath: '/srv/ps/pageserver.toml', fileFound: true })
    expect(json.config).toMatchObject({ checkpointDistanceBytes: 1 << 20, checkpointTimeoutMs: 30_000, pgDistribDir: '/srv/ps/pg' })
    expect(json.config.remoteStorage).toMatchObject({ credentials: { accessKeyId: '<redacted>', secretAccessKey: '<redacted>' } })
    expect(json.origins).toMatchObject({ checkpoint_distance: 'file', checkpoint_timeout: 'override', gc_period: 'default' })
    expect(JSON.stringify(result)).not.toMatch(/id-value|secret-value/)
  })
})
