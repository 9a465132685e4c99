// local/state.json, which records what `local start` set up: written atomically (a crash leaves the old
// state or the new one, never a torn file: an audit found a killed first start left it empty, and every
// later start and stop failed with "Unexpected end of JSON input"), and a damaged one is a clear error.
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { AppContext } from '../../../src/core/app/context.js'
import { readLocalState, writeLocalState, type LocalState } from '../../../src/core/app/local.js'
import { loadConfig } from '../../../src/core/config/index.js'
import { errorOf } from '../../support/errors.js'

const STATE: LocalState = {
  tenantId: 'a'.repeat(32),
  timelineId: 'b'.repeat(32),
  pgDataDir: '/tmp/x/pgdata',
  pgPort: 55432,
  pgLogFile: '/tmp/x/pg.log',
  pgSocketDir: '/tmp/x',
  servePid: null,
  serveLogFile: '/tmp/x/serve.log',
  pgAddr: null,
  httpAddr: null,
}

describe('local state file', () => {
  let workdir: string
  let ctx: AppContext
  beforeEach(async () => {
    workdir = mkdtempSync(join(tmpdir(), 'ps-local-state-'))
    ctx = { config: await loadConfig({ workdir, overrides: [], env: {} }), env: {} }
  })
  afterEach(() => rmSync(workdir, { recursive: true, force: true }))

  it('round-trips, and replaces the file by rename (no temporary file left)', () => {
    expect(readLocalState(ctx)).toBeNull()
    writeLocalState(ctx, STATE)
    writeLocalState(ctx, { ...STATE, pgPort: 55433 })
    expect(readLocalState(ctx)).toEqual({ ...STATE, pgPort: 55433 })
    expect(readdirSync(join(workdir, 'local'))).toEqual(['state.json'])
  })

  it.each([
    ['empty (a write torn by a crash, before this version)', ''],
    ['not JSON', '{"tenantId": "aaa'],
    ['JSON without the setup', '{"servePid": 12}'],
    ['null', 'null'],
  ])('%s: LOCAL_STATE_DAMAGED naming the file, with what to do', (_, text) => {
    writeLocalState(ctx, STATE)
    const path = join(workdir, 'local', 'state.json')
    writeFileSync(path, text)
    const e = errorOf(() => readLocalState(ctx))
    expect(e).toMatchObject({ code: 'LOCAL_STATE_DAMAGED', kind: 'corruption' })
    expect(e.message).toContain(path)
    expect(e.hint).toMatch(/Move it aside and run local start again/)
    expect(existsSync(path)).toBe(true)
  })

  it('paths inside the workdir follow it when it is moved, from older absolute files too; a copy does not follow a data directory outside it', () => {
    const inside = { ...STATE, pgDataDir: join(workdir, 'local', 'pgdata-bbbb'), pgLogFile: join(workdir, 'local', 'postgresql.log'), pgSocketDir: join(workdir, 'local'), serveLogFile: join(workdir, 'local', 'pageserver.log') }
    writeLocalState(ctx, inside)
    // Absolute (scripts read the file), with the workdir they were written in.
    expect(JSON.parse(readFileSync(join(workdir, 'local', 'state.json'), 'utf8'))).toMatchObject({ pgDataDir: join(workdir, 'local', 'pgdata-bbbb'), workdir })
    expect(readLocalState(ctx)).toEqual(inside)
    const moved = `${workdir}-moved`
    renameSync(workdir, moved)
    try {
      const movedCtx = { ...ctx, config: { ...ctx.config, workdir: moved } }
      expect(readLocalState(movedCtx)).toMatchObject({ pgDataDir: join(moved, 'local', 'pgdata-bbbb'), pgSocketDir: join(moved, 'local') })
      // A file of an earlier release, without the workdir: rebased too.
      writeFileSync(join(moved, 'local', 'state.json'), JSON.stringify(inside))
      expect(readLocalState(movedCtx)).toMatchObject({ pgDataDir: join(moved, 'local', 'pgdata-bbbb'), pgLogFile: join(moved, 'local', 'postgresql.log') })
    } finally {
      renameSync(moved, workdir)
    }
    // A data directory outside the workdir (root's case) belongs to the workdir that recorded it.
    writeLocalState(ctx, { ...inside, pgDataDir: '/var/lib/postgresql/pageserver-local/abc/pgdata-bbbb', pgSocketDir: '/var/lib/postgresql/pageserver-local/abc' })
    const copy = mkdtempSync(join(tmpdir(), 'ps-local-state-copy-'))
    try {
      cpSync(workdir, copy, { recursive: true })
      const copyCtx = { ...ctx, config: { ...ctx.config, workdir: copy } }
      expect(errorOf(() => readLocalState(copyCtx))).toMatchObject({ code: 'LOCAL_STATE_OF_ANOTHER_WORKDIR', exitCode: 4 })
      expect(readLocalState(ctx)?.pgDataDir).toBe('/var/lib/postgresql/pageserver-local/abc/pgdata-bbbb')
    } finally {
      rmSync(copy, { recursive: true, force: true })
    }
  })
})
