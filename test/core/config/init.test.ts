import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { spawn } from 'node:child_process'
import { initWorkdir, loadConfig, renderConfigTemplate } from '../../../src/core/config/index.js'
import { LOCK_FILE } from '../../../src/core/storage/workdir-lock.js'
import { processStartId } from '../../../src/core/storage/process-identity.js'

describe('initWorkdir', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ps-init-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('creates the workdir, tenants/ and the default template', async () => {
    const wd = join(dir, 'a', 'nested', '.neon')
    const r = await initWorkdir({ workdir: wd })
    expect(r).toEqual({
      workdir: wd,
      configPath: join(wd, 'pageserver.toml'),
      tenantsDir: join(wd, 'tenants'),
      overwritten: false,
      chosenKeys: [],
    })
    expect((await stat(r.tenantsDir)).isDirectory()).toBe(true)
    expect(await readFile(r.configPath, 'utf8')).toBe(renderConfigTemplate())
    expect((await readdir(wd)).sort()).toEqual(['pageserver.toml', 'tenants'])
  })

  it('refuses to replace an existing file without force, and replaces it with force', async () => {
    const wd = join(dir, 'twice')
    await initWorkdir({ workdir: wd })
    await writeFile(join(wd, 'pageserver.toml'), 'gc_horizon = 1\n')
    await expect(initWorkdir({ workdir: wd })).rejects.toMatchObject({ code: 'CONFIG_EXISTS', kind: 'conflict', exitCode: 4 })
    expect(await readFile(join(wd, 'pageserver.toml'), 'utf8')).toBe('gc_horizon = 1\n')
    const r = await initWorkdir({ workdir: wd, force: true })
    expect(r.overwritten).toBe(true)
    expect(await readFile(r.configPath, 'utf8')).toBe(renderConfigTemplate())
    expect((await readdir(wd)).sort()).toEqual(['pageserver.toml', 'tenants'])
  })

  it('does not replace the config under a process holding the workdir (a running serve)', async () => {
    const wd = join(dir, 'held')
    await initWorkdir({ workdir: wd })
    await writeFile(join(wd, 'pageserver.toml'), 'gc_horizon = 1\n')
    const holder = spawn('sleep', ['30'], { stdio: 'ignore' })
    try {
      const pid = holder.pid!
      const lock = { pid, processStart: processStartId(pid), command: 'serve', startedAt: new Date().toISOString() }
      await writeFile(join(wd, LOCK_FILE), JSON.stringify(lock) + '\n')
      await expect(initWorkdir({ workdir: wd, force: true })).rejects.toMatchObject({ code: 'WORKDIR_LOCKED', message: expect.stringContaining(`pid ${pid}`) })
      expect(await readFile(join(wd, 'pageserver.toml'), 'utf8')).toBe('gc_horizon = 1\n')
    } finally {
      holder.kill('SIGKILL')
    }
    // The holder gone, its stale lock is taken over and the config replaced.
    await new Promise((resolve) => holder.once('exit', resolve))
    expect((await initWorkdir({ workdir: wd, force: true })).overwritten).toBe(true)
    expect((await readdir(wd)).sort()).toEqual(['pageserver.toml', 'tenants'])
  })

  it('writes -c overrides as chosen values that load back', async () => {
    const wd = join(dir, 'chosen')
    const r = await initWorkdir({
      workdir: wd,
      overrides: ['checkpoint_distance=64MiB', "remote_storage={local_path='remote'}", 'auth_type=NeonJWT', 'auth_validation_public_key_path=k.pem'],
    })
    expect([...r.chosenKeys].sort()).toEqual(['auth_validation_public_key_path', 'checkpoint_distance', 'http_auth_type', 'pg_auth_type', 'remote_storage'])
    const text = await readFile(r.configPath, 'utf8')
    expect(text).toContain('\ncheckpoint_distance = "64MiB"\n')
    expect(text).toContain('\npg_auth_type = "NeonJWT"\n')
    const config = await loadConfig({ workdir: wd })
    expect(config).toMatchObject({
      checkpointDistanceBytes: 64 << 20,
      pgAuthType: 'NeonJWT',
      httpAuthType: 'NeonJWT',
      authValidationPublicKeyPath: join(wd, 'k.pem'),
      remoteStorage: { kind: 'local', localPath: join(wd, 'remote') },
    })
  })

  it('validates overrides before creating anything', async () => {
    const wd = join(dir, 'invalid')
    await expect(initWorkdir({ workdir: wd, overrides: ['checkpoint_distance=much'] })).rejects.toMatchObject({ code: 'CONFIG_BAD_VALUE' })
    await expect(stat(wd)).rejects.toMatchObject({ code: 'ENOENT' })
  })

  it('fails clearly when the workdir is a file', async () => {
    const f = join(dir, 'file')
    await writeFile(f, 'x')
    await expect(initWorkdir({ workdir: f })).rejects.toMatchObject({ kind: 'usage' })
  })
})
