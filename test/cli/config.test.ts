// End to end: `pageserver init` and `pageserver config show` through the built CLI (npm run build first).
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { REPO_ROOT, runCli } from '../support/cli.js'

describe('pageserver init / config show', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ps-cli-config-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('init creates the workdir with the example config; a second init exits 4', async () => {
    const wd = join(dir, 'first')
    const r = await runCli(['init', '-D', wd])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain(`Created ${join(wd, 'pageserver.toml')}`)
    expect(await readFile(join(wd, 'pageserver.toml'), 'utf8')).toBe(await readFile(join(REPO_ROOT, '.neon.example', 'pageserver.toml'), 'utf8'))
    expect((await stat(join(wd, 'tenants'))).isDirectory()).toBe(true)

    const again = await runCli(['init', '-D', wd])
    expect(again.code).toBe(4)
    expect(again.stdout).toBe('')
    expect(again.stderr).toContain('already exists')
    expect(again.stderr).toContain('Hint: ')

    const json = await runCli(['init', '-D', wd, '--json'])
    expect(json.code).toBe(4)
    expect(json.json()).toEqual({
      // The hint's command names the workdir given (run as written elsewhere, it would init ./.neon).
      error: { code: 'CONFIG_EXISTS', message: `${join(wd, 'pageserver.toml')} already exists`, hint: expect.stringContaining(`pageserver init -D ${wd} --force`) },
    })

    const forced = await runCli(['init', '-D', wd, '--force', '--json'])
    expect(forced.code).toBe(0)
    expect(forced.json()).toMatchObject({ workdir: wd, overwritten: true, chosenKeys: [] })
  })

  it('init -c writes chosen values that config show then reports as coming from the file', async () => {
    const wd = join(dir, 'chosen')
    const r = await runCli(['init', '-D', wd, '-c', 'checkpoint_distance=64MiB', '-c', "remote_storage={local_path='remote/'}", '--json'])
    expect(r.code).toBe(0)
    expect(r.json()).toMatchObject({ chosenKeys: ['checkpoint_distance', 'remote_storage'] })
    const show = await runCli(['config', 'show', '-D', wd, '--json'])
    expect(show.code).toBe(0)
    const j = show.json()
    expect(j.config.checkpointDistanceBytes).toBe(64 * 1024 * 1024)
    expect(j.config.remoteStorage).toEqual({ kind: 'local', localPath: join(wd, 'remote'), concurrencyLimit: 100, timeoutMs: 120000 })
    expect(j.origins).toMatchObject({ checkpoint_distance: 'file', remote_storage: 'file', gc_horizon: 'default' })
  })

  it('config show refuses a pageserver.toml that is a FIFO (exit 2) instead of waiting for a writer', async () => {
    const wd = join(dir, 'fifo')
    await mkdir(wd)
    execFileSync('mkfifo', [join(wd, 'pageserver.toml')])
    const r = await runCli(['config', 'show', '-D', wd, '--json'], { timeoutMs: 20_000 })
    expect(r.timedOut).toBe(false)
    expect(r.code).toBe(2)
    expect(r.json().error).toMatchObject({ code: 'CONFIG_UNREADABLE', message: `config file ${join(wd, 'pageserver.toml')} is not a regular file: it is a FIFO (named pipe)` })
  })

  it('config show --json prints the defaults when there is no file', async () => {
    const wd = join(dir, 'none')
    const r = await runCli(['config', 'show', '--workdir', wd, '--json'])
    expect(r.code).toBe(0)
    expect(r.stderr).toBe('')
    const j = r.json()
    expect(j).toMatchObject({ workdir: wd, configPath: join(wd, 'pageserver.toml'), fileFound: false })
    expect(j.config).toMatchObject({
      listenPgAddr: '127.0.0.1:64000',
      listenHttpAddr: '127.0.0.1:9898',
      checkpointDistanceBytes: 268435456,
      checkpointTimeoutMs: 600000,
      waitLsnTimeoutMs: 300000,
      walRedoTimeoutMs: 60000,
      remoteStorage: null,
    })
    // show does not create the workdir
    await expect(stat(wd)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('shows -c overrides, in the bare and the quoted forms', async () => {
    const wd = join(dir, 'overrides')
    const args = ['config', 'show', '-D', wd, '-c', 'checkpoint_timeout=10s', '-c', 'listen_pg_addr=127.0.0.1:6400', '-c', "remote_storage={local_path='/some/path/'}", '-c', 'checkpoint_distance=268435456']
    const j = (await runCli([...args, '--json'])).json()
    expect(j.config).toMatchObject({ checkpointTimeoutMs: 10000, listenPgAddr: '127.0.0.1:6400', remoteStorage: { kind: 'local', localPath: '/some/path' } })
    expect(j.origins).toMatchObject({ checkpoint_timeout: 'override', listen_pg_addr: 'override', remote_storage: 'override', checkpoint_distance: 'override' })
    const text = await runCli(args)
    expect(text.code).toBe(0)
    expect(text.stdout).toContain('checkpoint_timeout = "10s"  # -c\n')
    expect(text.stdout).toContain('listen_pg_addr = "127.0.0.1:6400"  # -c\n')
  })

  it('a bad -c exits 2 with a JSON error naming the key', async () => {
    const wd = join(dir, 'bad')
    const cases: Array<[string, string, RegExp]> = [
      ['checkpoint_distance=true', 'CONFIG_WRONG_TYPE', /checkpoint_distance must be a size/],
      ['chekpoint_distance=1', 'CONFIG_UNKNOWN_KEY', /chekpoint_distance/],
      ["remote_storage={local_path='/a', bucket_name='b', bucket_region='r'}", 'CONFIG_REMOTE_STORAGE_FORMS', /local_path.*bucket_name/],
      ['remote_storage={local_path=/a}', 'CONFIG_SYNTAX', /line 1, column \d+/],
    ]
    for (const [fragment, code, message] of cases) {
      const r = await runCli(['config', 'show', '-D', wd, '-c', fragment, '--json'])
      expect(r.code, fragment).toBe(2)
      const j = r.json()
      expect(Object.keys(j)).toEqual(['error'])
      expect(Object.keys(j.error).sort()).toEqual(['code', 'hint', 'message'])
      expect(j.error.code).toBe(code)
      expect(j.error.message).toMatch(message)
      expect(j.error.hint).toBeTruthy()
      if (code === 'CONFIG_UNKNOWN_KEY') expect(j.error.hint).toBe('Did you mean checkpoint_distance?')
    }
    const text = await runCli(['config', 'show', '-D', wd, '-c', 'checkpoint_distance=true'])
    expect(text.code).toBe(2)
    expect(text.stdout).toBe('')
    expect(text.stderr).toMatch(/^Error: checkpoint_distance must be a size/)
    // Commands that read no config refuse a bad -c too; one that needs a key pageserver.toml may set is let through.
    for (const args of [['wal', 'dump', join(dir, 'no-wal')], ['layer', 'dump', join(dir, 'no-layer')]]) {
      const typo = await runCli([...args, '-c', 'chekpoint_distance=1', '--json'])
      expect(typo.code, args[0]).toBe(2)
      expect(typo.json<{ error: { code: string } }>().error.code).toBe('CONFIG_UNKNOWN_KEY')
      const partial = await runCli([...args, '-c', 'pg_auth_type="NeonJWT"', '--json'])
      expect(partial.json<{ error: { code: string } }>().error.code, args[0]).not.toMatch(/^CONFIG_/)
    }
  })

  it('an unknown flag exits 2', async () => {
    const r = await runCli(['config', 'show', '--no-such-flag'])
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('--no-such-flag')
    const j = await runCli(['config', 'show', '--no-such-flag', '--json'])
    expect(j.code).toBe(2)
    expect(j.json().error).toMatchObject({ code: 'USAGE' })
    expect((await runCli(['init', '--bogus'])).code).toBe(2)
    // -c takes one value: a stray word after it is an argument (rejected here), not a second override.
    const stray = await runCli(['config', 'show', '-D', join(dir, 'stray'), '-c', 'no_sync=true', 'gc_horizon=1', '--json'])
    expect(stray.code).toBe(2)
    expect(stray.json().error.message).toContain('Unexpected argument: gc_horizon=1')
  })

  it('takes the workdir from --workdir, else PAGESERVER_WORKDIR, else .neon in the current directory', async () => {
    const fromEnv = join(dir, 'env-wd')
    const fromFlag = join(dir, 'flag-wd')
    expect((await runCli(['init'], { env: { PAGESERVER_WORKDIR: fromEnv } })).code).toBe(0)
    expect((await stat(join(fromEnv, 'pageserver.toml'))).isFile()).toBe(true)
    const both = await runCli(['config', 'show', '--json', '-D', fromFlag], { env: { PAGESERVER_WORKDIR: fromEnv } })
    expect(both.json().workdir).toBe(fromFlag)
    const envOnly = await runCli(['config', 'show', '--json'], { env: { PAGESERVER_WORKDIR: fromEnv } })
    expect(envOnly.json()).toMatchObject({ workdir: fromEnv, fileFound: true })
    const cwd = await mkdtemp(join(dir, 'cwd-'))
    const dflt = await runCli(['config', 'show', '--json'], { cwd, env: { PAGESERVER_WORKDIR: undefined } })
    expect(dflt.json().workdir).toBe(join(cwd, '.neon'))
  })

  it('never prints credentials from the environment', async () => {
    const env = { AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE', AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY' }
    const s3 = "remote_storage={bucket_name='b', bucket_region='eu-north-1', endpoint='http://127.0.0.1:9000'}"
    for (const extra of [['--json'], []]) {
      const r = await runCli(['config', 'show', '-D', join(dir, 'creds'), '-c', s3, ...extra], { env })
      expect(r.code).toBe(0)
      expect(r.stdout).toContain('<redacted>')
      for (const v of Object.values(env)) {
        expect(r.stdout).not.toContain(v)
        expect(r.stderr).not.toContain(v)
      }
    }
  })
})
