// runPgTool when the tool exits without reading the input it was given (here `psql --version` handed 8 MiB):
// the pipe breaks under our write (EPIPE). That is not the tool's failure, and, unhandled, it surfaced as an
// error outside any test in a suite run: the result is the tool's exit code and output, nothing else.
import { describe, expect, it } from 'vitest'
import { findPostgres, runPgTool } from '../../../src/core/postgres/install.js'
import { pgAvailable } from '../../support/pg-cluster.js'

describe.skipIf(!pgAvailable())('runPgTool', () => {
  it('a tool that exits before reading its input: its own result, no EPIPE', async () => {
    const inst = findPostgres(undefined, process.env)
    for (let i = 0; i < 5; i++) {
      const r = await runPgTool(inst, 'psql', ['--version'], { input: Buffer.alloc(8 * 1024 * 1024, 0x41) })
      expect(r.code).toBe(0)
      expect(r.stdout).toMatch(/psql \(PostgreSQL\) 15\./)
    }
  })
})
