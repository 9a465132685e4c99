// Error messages users see, through the built CLI: oclif's parser messages in one line (missing required
// flags by their names, both forms for a flag with a short one; "--flag: <why>" for a value that does not
// parse), unknown commands as UNKNOWN_COMMAND (JSON with --json, named with spaces, exit 2), and the hints of
// errors raised on a real workdir: a missing timeline, a timeline with no WAL source, an unknown tenant.
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cliWorkdirWithTimeline, runCli } from '../support/cli.js'
import { pgAvailable } from '../support/pg-cluster.js'

const ID = '0123456789abcdef0123456789abcdef'

interface ErrorJson {
  error: { code: string; message: string; hint: string | null }
}

describe('parser errors', () => {
  it('a missing required flag is named as a flag, in one line', async () => {
    const r = await runCli(['getpage', '--timeline', ID, '--rel', '1/2/3', '--blk', '0'])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe('Error: missing required flag --tenant\nHint: Run the command with --help to see its flags and arguments.\n')
    const two = await runCli(['getpage', '--timeline', ID, '--rel', '1/2/3', '--json'])
    expect(two.code).toBe(2)
    expect(two.json<ErrorJson>().error).toEqual({ code: 'USAGE', message: 'missing required flags --blk, --tenant', hint: expect.any(String) })
  })

  it('a missing required flag with a short form names both', async () => {
    const r = await runCli(['timeline', 'export', '--tenant', ID, '--timeline', ID, '--json'])
    expect(r.code).toBe(2)
    expect(r.json<ErrorJson>().error).toMatchObject({ code: 'USAGE', message: 'missing required flag -D/--pgdata' })
  })

  it('a flag value that does not parse is "--flag: why", keeping its code', async () => {
    const r = await runCli(['getpage', '--tenant', 'xyz', '--timeline', ID, '--rel', '1/2/3', '--blk', '0', '--json'])
    expect(r.code).toBe(2)
    expect(r.json<ErrorJson>().error).toMatchObject({ code: 'BAD_ID', message: '--tenant: Tenant id: "xyz" is not a tenant id (32 hex characters)' })
  })

  it('a missing argument is named, without oclif\'s notes', async () => {
    const r = await runCli(['layer', 'dump', '--json'])
    expect(r.code).toBe(2)
    expect(r.json<ErrorJson>().error).toMatchObject({ code: 'USAGE', message: 'missing required argument FILE' })
  })
})

describe('unknown commands', () => {
  it('print UNKNOWN_COMMAND as JSON with --json, exit 2', async () => {
    const r = await runCli(['nosuchcmd', '--json'])
    expect(r.code).toBe(2)
    expect(r.stderr).toBe('')
    expect(r.json<ErrorJson>()).toEqual({ error: { code: 'UNKNOWN_COMMAND', message: 'unknown command "nosuchcmd"', hint: '`pageserver --help` lists the commands.' } })
  })

  it('are named with spaces, with a hint for the topic or the closest command', async () => {
    const r = await runCli(['tenant', 'nosuch'])
    expect(r.code).toBe(2)
    expect(r.stdout).toBe('')
    expect(r.stderr).toBe('Error: unknown command "tenant nosuch"\nHint: `pageserver tenant --help` lists its commands.\n')
    const typo = await runCli(['timline', 'list', '--json'])
    expect(typo.code).toBe(2)
    expect(typo.json<ErrorJson>().error).toMatchObject({ code: 'UNKNOWN_COMMAND', message: 'unknown command "timline list"', hint: expect.stringContaining('`pageserver timeline list`') })
  })
})

describe('a workdir that does not exist', () => {
  let root: string
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'ps-cli-no-workdir-'))
  })
  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true })
  })

  it('is WORKDIR_NOT_FOUND (exit 3) for checkpoint and timeline delete, and nothing is created', async () => {
    const missing = join(root, 'typo', 'wd')
    for (const args of [
      ['checkpoint', '--tenant', ID, '--timeline', ID],
      ['timeline', 'delete', '--tenant', ID, '--timeline', ID],
      ['tenant', 'create'],
    ]) {
      const r = await runCli([...args, '-D', missing, '--json'])
      expect(r.code, args.join(' ')).toBe(3)
      const e = r.json<ErrorJson>().error
      expect(e).toMatchObject({ code: 'WORKDIR_NOT_FOUND', message: `the workdir ${missing} does not exist` })
      expect(e.hint).toContain('pageserver init')
      expect(e.hint).toContain('PAGESERVER_WORKDIR')
      expect(existsSync(join(root, 'typo'))).toBe(false)
    }
  })
})

describe.skipIf(!pgAvailable())('hints of errors on a workdir', () => {
  let root: string
  let wd: string
  let tenant: string
  let timeline: string
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'ps-cli-errors-'))
    wd = join(root, 'wd')
    ;({ tenant, timeline } = await cliWorkdirWithTimeline(wd))
  })
  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true })
  })

  it('timeline delete of a missing timeline has a hint', async () => {
    const r = await runCli(['timeline', 'delete', '-D', wd, '--tenant', tenant, '--timeline', ID, '--json'])
    expect(r.code).toBe(3)
    const e = r.json<ErrorJson>().error
    expect(e.code).toBe('TIMELINE_NOT_FOUND')
    expect(e.hint).toContain(`pageserver timeline list --tenant ${tenant}`)
  })

  it('timeline sync without a WAL source points at `timeline source --from`', async () => {
    const r = await runCli(['timeline', 'sync', '-D', wd, '--tenant', tenant, '--timeline', timeline, '--json'])
    expect(r.code).toBe(2)
    const e = r.json<ErrorJson>().error
    expect(e.code).toBe('NO_WAL_SOURCE')
    expect(e.hint).toContain(`\`pageserver timeline source --tenant ${tenant} --timeline ${timeline} --from CONNSTR\``)
  })

  it('layer list names an unknown tenant, exit 3', async () => {
    const r = await runCli(['layer', 'list', '-D', wd, '--tenant', ID, '--timeline', timeline, '--json'])
    expect(r.code).toBe(3)
    expect(r.json<ErrorJson>().error).toMatchObject({ code: 'TENANT_NOT_FOUND', message: expect.stringContaining(ID) })
    const tl = await runCli(['layer', 'list', '-D', wd, '--tenant', tenant, '--timeline', ID, '--json'])
    expect(tl.code).toBe(3)
    expect(tl.json<ErrorJson>().error.code).toBe('TIMELINE_NOT_FOUND')
  })
})
