// tenantOptions: every repository and timeline opened with one context shares one slab pool (one
// max_in_memory_layers_bytes budget: the served repository's and those of imports and bootstraps it runs);
// another context has its own. applyCacheSizes: page_cache_size sizes the page cache and the value cache,
// half each (withRepository applies it).
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { applyCacheSizes, tenantOptions, withRepository, type AppContext } from '../../../src/core/app/context.js'
import { sharedPageCache } from '../../../src/core/datadir/page-cache.js'
import { sharedValueCache } from '../../../src/core/layer/value-cache.js'
import { loadConfig } from '../../../src/core/config/index.js'
import { PAGE_SERVICE_DEFAULTS } from '../../../src/core/page-service/options.js'
import { WALREDO_QUEUED_MAX } from '../../../src/core/repository/tenant.js'
import { QUEUED_MAX } from '../../../src/core/walredo/manager.js'

describe('tenantOptions', () => {
  const workdir = mkdtempSync(join(tmpdir(), 'ps-ctx-'))
  afterAll(() => rmSync(workdir, { recursive: true, force: true }))

  it('gives one slab pool per context, sized to max_in_memory_layers_bytes', async () => {
    const ctx: AppContext = { config: await loadConfig({ workdir, overrides: ['max_in_memory_layers_bytes=64MiB'], env: {} }), env: {} }
    const a = tenantOptions(ctx).slabPool
    const b = tenantOptions(ctx, true).slabPool
    expect(a).toBeDefined()
    expect(b).toBe(a)
    expect(a!.residentBytesMax).toBe(64 * 1024 * 1024)
    const other: AppContext = { config: ctx.config, env: {} }
    expect(tenantOptions(other).slabPool).not.toBe(a)
  })

  it('gives the redo pool a queue as deep as the page service admits (connections x requests in flight each)', async () => {
    const ctxOf = async (o: string[]): Promise<AppContext> => ({ config: await loadConfig({ workdir, overrides: o, env: {} }), env: {} })
    expect(tenantOptions(await ctxOf([])).walRedo.maxQueued).toBe(1000 * PAGE_SERVICE_DEFAULTS.inFlightMax)
    expect(tenantOptions(await ctxOf(['page_service_max_connections=2000'])).walRedo.maxQueued).toBe(2000 * PAGE_SERVICE_DEFAULTS.inFlightMax)
    // Never below the offline default, never above what the redo manager takes (it refuses the config
    // otherwise, at the first redo).
    expect(tenantOptions(await ctxOf(['page_service_max_connections=1'])).walRedo.maxQueued).toBe(WALREDO_QUEUED_MAX)
    expect(tenantOptions(await ctxOf(['page_service_max_connections=100000'])).walRedo.maxQueued).toBe(QUEUED_MAX)
  })
})

describe('applyCacheSizes', () => {
  const workdir = mkdtempSync(join(tmpdir(), 'ps-ctx-cache-'))
  afterAll(() => rmSync(workdir, { recursive: true, force: true }))

  it('splits page_cache_size between the page cache and the value cache, when a repository opens', async () => {
    const ctxOf = async (o: string[]): Promise<AppContext> => ({ config: await loadConfig({ workdir, overrides: o, env: {} }), env: {} })
    try {
      await withRepository(await ctxOf(['page_cache_size=1000']), async () => {
        expect(sharedPageCache.capacityBytes).toBe(500 * 8192)
        expect(sharedValueCache.capacityBytes).toBe(500 * 8192)
      }, { lockFor: 'test' })
      applyCacheSizes(await ctxOf([]))
      expect(sharedPageCache.capacityBytes).toBe(32 * 1024 * 1024) // the default, 8192 pages
      expect(sharedValueCache.capacityBytes).toBe(32 * 1024 * 1024)
    } finally {
      applyCacheSizes(await ctxOf([]))
    }
  })
})
