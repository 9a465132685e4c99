import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { inspectConfig, loadConfig, resolveConfig, type LoadedConfig } from '../../../src/core/config/index.js'
import { PageserverError } from '../../../src/core/lib/errors.js'
import { errorOf } from '../../support/errors.js'

const WORKDIR = '/srv/ps'

function load(fileText: string | null, overrides: string[] = [], env: Record<string, string> = {}): LoadedConfig {
  return resolveConfig({ workdir: WORKDIR, configPath: `${WORKDIR}/pageserver.toml`, fileText, overrides, env })
}

describe('defaults', () => {
  it('gives Neon defaults when there is no file and no override', () => {
    const { config, fileFound, origins } = load(null)
    expect(fileFound).toBe(false)
    expect(config).toMatchObject({
      workdir: WORKDIR,
      listenPgAddr: '127.0.0.1:64000',
      listenHttpAddr: '127.0.0.1:9898',
      pgAuthType: 'Trust',
      httpAuthType: 'Trust',
      authValidationPublicKeyPath: null,
      pageServiceMaxConnections: 1000,
      pageServiceIdleTimeoutMs: 600_000,
      checkpointDistanceBytes: 256 * 1024 * 1024,
      checkpointTimeoutMs: 10 * 60_000,
      compactionPeriodMs: 20_000,
      compactionThreshold: 10,
      compactionTargetSizeBytes: 128 * 1024 * 1024,
      imageCreationThreshold: 3,
      gcPeriodMs: 3_600_000,
      gcHorizonBytes: 64 * 1024 * 1024,
      pitrIntervalMs: 7 * 86_400_000,
      waitLsnTimeoutMs: 300_000,
      walRedoTimeoutMs: 60_000,
      walRedoWorkers: 2,
      walRedoIdleTimeoutMs: 180_000,
      walRedoCommand: null,
      maxInMemoryLayersBytes: 512 * 1024 * 1024,
      pageCacheSizePages: 8192,
      noSync: false,
      pgDistribDir: null,
      remoteStorage: null,
    })
    expect(Object.values(origins).every((o) => o === 'default')).toBe(true)
  })

  it('treats an empty file like no file, but reports that it was found', () => {
    const empty = load('')
    expect(empty.fileFound).toBe(true)
    expect(empty.config).toEqual(load(null).config)
  })

  it('returns a deeply frozen config', () => {
    const { config } = load('wal_redo_command = ["postgres", "--wal-redo"]\nremote_storage = { local_path = "r" }')
    expect(Object.isFrozen(config)).toBe(true)
    expect(Object.isFrozen(config.walRedoCommand)).toBe(true)
    expect(Object.isFrozen(config.remoteStorage)).toBe(true)
    expect(() => {
      ;(config as { noSync: boolean }).noSync = true
    }).toThrow(TypeError)
  })
})

describe('value kinds', () => {
  it('parses sizes as byte counts or with units', () => {
    expect(load('checkpoint_distance = 268435456').config.checkpointDistanceBytes).toBe(268435456)
    expect(load('checkpoint_distance = "256MiB"').config.checkpointDistanceBytes).toBe(268435456)
    expect(load('checkpoint_distance = "64 MB"').config.checkpointDistanceBytes).toBe(64_000_000)
    expect(load('gc_horizon = 0').config.gcHorizonBytes).toBe(0)
    expect(load('max_in_memory_layers_bytes = 1_048_576').config.maxInMemoryLayersBytes).toBe(1 << 20)
  })

  it('parses durations with units, and bare numbers as seconds', () => {
    expect(load('checkpoint_timeout = "10s"').config.checkpointTimeoutMs).toBe(10_000)
    expect(load('checkpoint_timeout = "10 m"').config.checkpointTimeoutMs).toBe(600_000)
    expect(load('pitr_interval = "7 days"').config.pitrIntervalMs).toBe(7 * 86_400_000)
    expect(load('wait_lsn_timeout = "1h 30m"').config.waitLsnTimeoutMs).toBe(5_400_000)
    expect(load('wal_redo_timeout = "500ms"').config.walRedoTimeoutMs).toBe(500)
    expect(load('gc_period = 0').config.gcPeriodMs).toBe(0)
    expect(load('wal_redo_idle_timeout = 30').config.walRedoIdleTimeoutMs).toBe(30_000)
  })

  it('rejects a bad size or duration naming the key and the source', () => {
    const e = errorOf(() => load('checkpoint_distance = "lots"'))
    expect(e.code).toBe('CONFIG_BAD_VALUE')
    expect(e.message).toContain('checkpoint_distance')
    expect(e.message).toContain('/srv/ps/pageserver.toml')
    expect(e.hint).toMatch(/MiB/)
    const d = errorOf(() => load(null, ['checkpoint_timeout=10 fortnights']))
    expect(d.code).toBe('CONFIG_BAD_VALUE')
    expect(d.message).toContain('checkpoint_timeout')
    expect(d.message).toContain('-c "checkpoint_timeout=10 fortnights"')
  })

  it('enforces the limits of each key', () => {
    expect(errorOf(() => load('checkpoint_distance = 0')).message).toMatch(/checkpoint_distance: 0 bytes is below the minimum 1 bytes/)
    expect(errorOf(() => load('wal_redo_workers = 0')).code).toBe('CONFIG_BAD_VALUE')
    expect(errorOf(() => load('wal_redo_workers = 65')).message).toMatch(/wal_redo_workers: 65 is above the maximum 64/)
    expect(errorOf(() => load('page_cache_size = 18446744073709551615')).code).toBe('CONFIG_BAD_VALUE')
    expect(errorOf(() => load('checkpoint_timeout = "0s"')).code).toBe('CONFIG_BAD_VALUE')
    expect(errorOf(() => load('checkpoint_distance = -1')).code).toBe('CONFIG_BAD_VALUE')
  })

  it('parses integers, booleans and enums', () => {
    const { config } = load('compaction_threshold = 4\nimage_creation_threshold = 2\nno_sync = true\npage_cache_size = 100\nhttp_auth_type = "neonjwt"\nauth_validation_public_key_path = "k.pem"')
    expect(config.compactionThreshold).toBe(4)
    expect(config.imageCreationThreshold).toBe(2)
    expect(config.noSync).toBe(true)
    expect(config.pageCacheSizePages).toBe(100)
    expect(config.httpAuthType).toBe('NeonJWT')
    expect(config.pgAuthType).toBe('Trust')
  })

  it('validates listen addresses', () => {
    expect(load('listen_pg_addr = "[::1]:6400"').config.listenPgAddr).toBe('[::1]:6400')
    expect(load('listen_http_addr = "localhost:0"').config.listenHttpAddr).toBe('localhost:0')
    for (const bad of ['"127.0.0.1"', '"127.0.0.1:65536"', '":80"', '"a b:1"']) {
      const e = errorOf(() => load(`listen_pg_addr = ${bad}`))
      expect(e.code).toBe('CONFIG_BAD_VALUE')
      expect(e.message).toContain('listen_pg_addr')
    }
  })

  it('resolves relative paths against the workdir', () => {
    const { config } = load('pg_distrib_dir = "pg"\nauth_validation_public_key_path = "/etc/keys/"')
    expect(config.pgDistribDir).toBe('/srv/ps/pg')
    expect(config.authValidationPublicKeyPath).toBe('/etc/keys')
  })

  it('takes wal_redo_command as an array of strings', () => {
    expect(load('wal_redo_command = ["postgres", "--wal-redo"]').config.walRedoCommand).toEqual(['postgres', '--wal-redo'])
    expect(errorOf(() => load('wal_redo_command = "postgres --wal-redo"')).code).toBe('CONFIG_WRONG_TYPE')
    expect(errorOf(() => load('wal_redo_command = []')).code).toBe('CONFIG_BAD_VALUE')
    expect(errorOf(() => load('wal_redo_command = ["postgres", 1]')).message).toContain('wal_redo_command[1]')
  })
})

describe('wrong types and unknown keys', () => {
  it.each([
    ['checkpoint_distance = true', 'checkpoint_distance', 'boolean true'],
    ['compaction_threshold = "10"', 'compaction_threshold', 'string "10"'],
    ['compaction_threshold = 1.5', 'compaction_threshold', 'float 1.5'],
    ['no_sync = "yes"', 'no_sync', 'string "yes"'],
    ['listen_pg_addr = 64000', 'listen_pg_addr', 'integer 64000'],
    ['gc_period = [1]', 'gc_period', 'an array'],
    ['remote_storage = "/tmp/x"', 'remote_storage', 'string "/tmp/x"'],
    ['pitr_interval = 1979-05-27', 'pitr_interval', 'a date'],
  ])('%s is a type error naming the key', (text, key, got) => {
    const e = errorOf(() => load(text))
    expect(e.code).toBe('CONFIG_WRONG_TYPE')
    expect(e.message.startsWith(`${key} must be `)).toBe(true)
    expect(e.message).toContain(`not ${got}`)
    expect(e.details).toMatchObject({ key })
    expect(e.hint).toBeTruthy()
    expect(e.exitCode).toBe(2)
  })

  it('names an unknown key and suggests the closest known one', () => {
    const e = errorOf(() => load('checkpoint_distanse = 1'))
    expect(e.code).toBe('CONFIG_UNKNOWN_KEY')
    expect(e.message).toContain('checkpoint_distanse')
    expect(e.hint).toBe('Did you mean checkpoint_distance?')
    expect(errorOf(() => load(null, ['listen-pg-addr="a:1"'])).hint).toBe('Did you mean listen_pg_addr?')
    expect(errorOf(() => load('walredo_timeout = "1s"')).hint).toBe('Did you mean wal_redo_timeout?')
  })

  it('gives a pointed hint for keys of other layouts, and none for nonsense', () => {
    expect(errorOf(() => load('[tenant_config]\ngc_period = "1h"')).hint).toMatch(/top-level keys/)
    expect(errorOf(() => load(null, ['workdir="/x"'])).hint).toMatch(/--workdir/)
    const e = errorOf(() => load('zzzzzzzz = 1'))
    expect(e.hint).not.toMatch(/Did you mean/)
    expect(e.hint).toMatch(/pageserver\.toml/)
  })

  it('checks unknown keys even when a later override would replace them', () => {
    expect(errorOf(() => load('bogus_key = 1', ['checkpoint_distance=1'])).code).toBe('CONFIG_UNKNOWN_KEY')
  })
})

describe('-c overrides', () => {
  it('replaces top-level keys of the file, last one wins', () => {
    const r = load('checkpoint_distance = "1MiB"\ngc_horizon = 5', ['checkpoint_distance=2048', 'checkpoint_distance="4KiB"'])
    expect(r.config.checkpointDistanceBytes).toBe(4096)
    expect(r.config.gcHorizonBytes).toBe(5)
    expect(r.origins.checkpoint_distance).toBe('override')
    expect(r.origins.gc_horizon).toBe('file')
    expect(r.origins.gc_period).toBe('default')
  })

  it('replaces whole tables, with no deep merge', () => {
    const file = 'remote_storage = { bucket_name = "b", bucket_region = "r", concurrency_limit = 7 }'
    const r = load(file, ["remote_storage={local_path='/some/path/'}"])
    expect(r.config.remoteStorage).toEqual({ kind: 'local', localPath: '/some/path', concurrencyLimit: 100, timeoutMs: 120_000 })
    // A dotted key is still a whole top-level value: the file's bucket_name does not survive.
    const d = load(file, ['remote_storage.local_path="/p"'])
    expect(d.config.remoteStorage?.kind).toBe('local')
  })

  it('accepts quoted TOML and bare key=value forms', () => {
    const cases: Array<[string, Partial<Record<string, unknown>>]> = [
      ['checkpoint_distance=268435456', { checkpointDistanceBytes: 268435456 }],
      ['checkpoint_distance=256MiB', { checkpointDistanceBytes: 268435456 }],
      ["checkpoint_distance='256MiB'", { checkpointDistanceBytes: 268435456 }],
      ['checkpoint_timeout=10s', { checkpointTimeoutMs: 10_000 }],
      ["checkpoint_timeout = '10 m'", { checkpointTimeoutMs: 600_000 }],
      ['listen_pg_addr=127.0.0.1:6400', { listenPgAddr: '127.0.0.1:6400' }],
      ['listen_pg_addr = "127.0.0.1:6400"', { listenPgAddr: '127.0.0.1:6400' }],
      ['listen_http_addr=[::1]:9898', { listenHttpAddr: '[::1]:9898' }],
      ['pg_auth_type=NeonJWT', { pgAuthType: 'NeonJWT' }],
      ['no_sync=true', { noSync: true }],
      ['wal_redo_workers = 4\nno_sync = true', { walRedoWorkers: 4, noSync: true }],
      ['wal_redo_command=["/opt/neon/postgres", "--wal-redo"]', { walRedoCommand: ['/opt/neon/postgres', '--wal-redo'] }],
    ]
    for (const [fragment, expected] of cases) {
      expect(load(null, [fragment, 'auth_validation_public_key_path=k.pem']).config, fragment).toMatchObject(expected)
    }
  })

  it('does not take a bare string for a value that is not a string kind', () => {
    const e = errorOf(() => load(null, ['no_sync=yes']))
    expect(e.code).toBe('CONFIG_WRONG_TYPE')
    expect(e.message).toContain('no_sync must be true or false, not string "yes"')
  })

  it('reports TOML syntax errors with the fragment, line and column', () => {
    const e = errorOf(() => load(null, ['remote_storage={local_path=/some/path/}']))
    expect(e.code).toBe('CONFIG_SYNTAX')
    expect(e.message).toBe('-c "remote_storage={local_path=/some/path/}": line 1, column 28: invalid value')
    expect(e.details).toMatchObject({ line: 1, column: 28 })
    for (const bad of ['a b = 1', 'checkpoint_distance=', 'wal_redo_command=[postgres]', "checkpoint_distance='1", 'no_sync=true\nx =']) {
      expect(errorOf(() => load(null, [bad])).code, bad).toBe('CONFIG_SYNTAX')
    }
    expect(errorOf(() => load(null, [''])).message).toMatch(/sets no key/)
  })

  it('reports TOML syntax errors in the file with its path, line and column', () => {
    const e = errorOf(() => load('checkpoint_distance = 1\n\nlisten_pg_addr = 127.0.0.1:6400\n'))
    expect(e.code).toBe('CONFIG_SYNTAX')
    expect(e.message).toBe('/srv/ps/pageserver.toml: line 3, column 23: illegal character in numeric literal')
    expect(e.hint).toMatch(/quotes/)
    expect(errorOf(() => load('a = 1\na = 2')).details).toMatchObject({ line: 2, column: 1 })
    expect(errorOf(() => load('__proto__ = 1')).code).toBe('CONFIG_SYNTAX')
  })

  it('bounds the number and the length of overrides', () => {
    expect(errorOf(() => load(null, Array.from({ length: 257 }, () => 'no_sync=true'))).code).toBe('CONFIG_TOO_LARGE')
    expect(errorOf(() => load(null, [`pg_distrib_dir="${'x'.repeat(70_000)}"`])).code).toBe('CONFIG_TOO_LARGE')
    expect(errorOf(() => load(null, [`pg_distrib_dir="${'x'.repeat(5000)}"`])).code).toBe('CONFIG_BAD_VALUE')
  })
})

describe('auth', () => {
  it('auth_type sets both auth types; explicit keys in the same document win; later documents override', () => {
    const k = 'auth_validation_public_key_path = "k"\n'
    expect(load(k + 'auth_type = "NeonJWT"').config).toMatchObject({ pgAuthType: 'NeonJWT', httpAuthType: 'NeonJWT' })
    expect(load(k + 'auth_type = "NeonJWT"\nhttp_auth_type = "Trust"').config).toMatchObject({ pgAuthType: 'NeonJWT', httpAuthType: 'Trust' })
    const r = load(k + 'pg_auth_type = "Trust"', ['auth_type=NeonJWT'])
    expect(r.config).toMatchObject({ pgAuthType: 'NeonJWT', httpAuthType: 'NeonJWT' })
    expect(r.origins.pg_auth_type).toBe('override')
    expect(errorOf(() => load('auth_type = "Password"')).message).toMatch(/auth_type: "Password" is not one of "Trust", "NeonJWT"/)
  })

  it('requires a public key path when an auth type is NeonJWT', () => {
    const e = errorOf(() => load(null, ['http_auth_type=NeonJWT']))
    expect(e.code).toBe('CONFIG_MISSING_KEY')
    expect(e.message).toBe('auth_validation_public_key_path is required when http_auth_type is NeonJWT (in -c "http_auth_type=NeonJWT")')
  })
})

describe('loadConfig on disk', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ps-config-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('uses defaults when the workdir or the file does not exist', async () => {
    const config = await loadConfig({ workdir: join(dir, 'missing') })
    expect(config.workdir).toBe(join(dir, 'missing'))
    expect(config.checkpointDistanceBytes).toBe(268435456)
  })

  it('reads <workdir>/pageserver.toml and applies overrides', async () => {
    const wd = join(dir, 'wd')
    await mkdir(wd)
    await writeFile(join(wd, 'pageserver.toml'), '\uFEFFgc_horizon = "1MiB"\nremote_storage = { local_path = "remote" }\n')
    const r = await inspectConfig({ workdir: wd, overrides: ['gc_period=5s'] })
    expect(r.fileFound).toBe(true)
    expect(r.configPath).toBe(join(wd, 'pageserver.toml'))
    expect(r.config.gcHorizonBytes).toBe(1 << 20)
    expect(r.config.gcPeriodMs).toBe(5000)
    expect(r.config.remoteStorage).toMatchObject({ kind: 'local', localPath: join(wd, 'remote') })
  })

  it('rejects a file that is too large, not UTF-8, or not a file', async () => {
    const big = join(dir, 'big')
    await mkdir(big)
    await writeFile(join(big, 'pageserver.toml'), '#'.repeat(1024 * 1024 + 1))
    await expect(loadConfig({ workdir: big })).rejects.toMatchObject({ code: 'CONFIG_TOO_LARGE' })
    const bin = join(dir, 'bin')
    await mkdir(bin)
    await writeFile(join(bin, 'pageserver.toml'), Buffer.from([0x61, 0x3d, 0x22, 0xff, 0x22]))
    await expect(loadConfig({ workdir: bin })).rejects.toMatchObject({ code: 'CONFIG_SYNTAX' })
    const asDir = join(dir, 'asdir')
    await mkdir(join(asDir, 'pageserver.toml'), { recursive: true })
    await expect(loadConfig({ workdir: asDir })).rejects.toMatchObject({ code: 'CONFIG_UNREADABLE' })
    const fileAsWorkdir = join(dir, 'plainfile')
    await writeFile(fileAsWorkdir, 'x')
    await expect(loadConfig({ workdir: fileAsWorkdir })).rejects.toMatchObject({ code: 'CONFIG_UNREADABLE' })
  })
})

describe('robustness', () => {
  it('answers any -c fragment with a config or a usage error, never a crash', () => {
    // Deterministic pseudo-random fragments built from known keys and TOML punctuation.
    let seed = 12345
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % n
    }
    const pieces = ['checkpoint_distance', 'remote_storage', 'local_path', 'bucket_name', 'wal_redo_command', 'auth_type', '=', '"', "'", '{', '}', '[', ']', ',', '.', ' ', '\n', '1', '-1', 'true', '10s', 'MiB', '0x10', '1e3', ':', '#', '__proto__', 'inf', 'nan', '1979-05-27']
    let ok = 0
    for (let i = 0; i < 3000; i++) {
      const keys = ['checkpoint_distance', 'checkpoint_timeout', 'listen_pg_addr', 'no_sync', 'remote_storage', 'wal_redo_command']
      const head = rand(2) === 0 ? `${keys[rand(keys.length)]}=` : ''
      const fragment = head + Array.from({ length: 1 + rand(head ? 3 : 8) }, () => pieces[rand(pieces.length)]).join('')
      try {
        load(null, [fragment])
        ok++
      } catch (err) {
        expect(err, fragment).toBeInstanceOf(PageserverError)
        expect((err as PageserverError).kind, fragment).toBe('usage')
      }
    }
    expect(ok).toBeGreaterThan(0)
  })
})
