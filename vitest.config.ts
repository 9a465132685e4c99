import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Integration tests start real PostgreSQL clusters; two cores do not profit from many parallel files.
    maxWorkers: 2,
    pool: 'forks',
  },
})
