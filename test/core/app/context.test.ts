// tenantOptions: every repository and timeline opened with one context shares one slab pool (one
// max_in_memory_layers_bytes budget: the served repository's and those of imports and bootstraps it runs);
// another context has its own.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { tenantOptions, type AppContext } from '../../../src/core/app/context.js'
import { loadConfig } from '../../../src/core/config/index.js'

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
})
