// `pageserver getpage` through the built CLI on a timeline bootstrapped with initdb: without --out, stdout
// that is not a terminal gets the raw page (exactly the bytes --out writes), a terminal gets the summary
// (stdout made to look like one by a preloaded module), --json the result with rel as "spc/db/rel" and the
// fork apart. Output paths that cannot be written are a usage error naming the path (OUTPUT_NOT_WRITABLE,
// exit 2), for `getpage --out` and for `timeline export -D`. Through a server, a page at an LSN not received yet
// says on stderr what it waits for, then fails with the server's LSN timeout; one below the timeline's first
// readable LSN is LSN_BEFORE_START (exit 2) offline and through the server alike.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cliWorkdirWithTimeline, runCli } from '../support/cli.js'
import { pgAvailable } from '../support/pg-cluster.js'
import { startServe } from '../support/serve-process.js'
import { formatLsn, parseLsn } from '../../src/core/pg/lsn.js'

/** pg_class of the `postgres` database (oid 5) as initdb leaves it: 14 blocks or so, fsm and vm forks. */
const REL = '1663/5/1259'

describe.skipIf(!pgAvailable())('pageserver getpage output', () => {
  let root: string
  let wd: string
  let tenant: string
  let timeline: string
  const getpage = (args: string[], env: Record<string, string> = {}) =>
    runCli(['getpage', '-D', wd, '--tenant', tenant, '--timeline', timeline, '--rel', REL, '--blk', '0', ...args], { env })

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'ps-cli-getpage-'))
    wd = join(root, 'wd')
    ;({ tenant, timeline } = await cliWorkdirWithTimeline(wd))
  })
  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true })
  })

  it('writes the raw 8192-byte page to a stdout that is not a terminal, the same bytes as --out', async () => {
    const out = join(root, 'page.bin')
    const file = await getpage(['--out', out])
    expect(file.code, file.stderr).toBe(0)
    const page = readFileSync(out)
    expect(page.length).toBe(8192)
    expect(page.equals(Buffer.alloc(8192))).toBe(false)

    const raw = await getpage([])
    expect(raw.code, raw.stderr).toBe(0)
    expect(raw.stderr).toBe('')
    expect(raw.stdoutBytes.length).toBe(8192)
    expect(raw.stdoutBytes.equals(page)).toBe(true)
  })

  it('prints the summary on a terminal', async () => {
    const preload = join(root, 'tty.mjs')
    writeFileSync(preload, 'process.stdout.isTTY = true\nprocess.stdout.columns = 100\nprocess.stdout.getWindowSize = () => [100, 40]\n')
    const r = await getpage([], { NODE_OPTIONS: `--import=${pathToFileURL(preload).href}` })
    expect(r.code, r.stderr).toBe(0)
    expect(r.stdout).toMatch(new RegExp(`^page ${REL} blk 0 at \\d+/[0-9A-F]+ \\(relation has \\d+ blocks\\)\\n`))
    expect(r.stdout).toMatch(/kind heap {2}pd_lsn/)
    expect(r.stdout).toContain('line pointers: ')
  })

  it('--json names the relation as spc/db/rel and the fork apart, for every fork', async () => {
    const main = await getpage(['--json'])
    expect(main.code, main.stderr).toBe(0)
    expect(main.json()).toMatchObject({ rel: REL, fork: 'main', blk: 0, source: 'offline', out: null, page: { kind: 'heap' } })
    const fsm = await getpage(['--fork', 'fsm', '--json'])
    expect(fsm.code, fsm.stderr).toBe(0)
    expect(fsm.json()).toMatchObject({ rel: REL, fork: 'fsm', blk: 0 })
  })

  it('--out to a path that cannot be written is OUTPUT_NOT_WRITABLE, exit 2, naming the path and the reason', async () => {
    const missingDir = join(root, 'no', 'such', 'dir', 'x.bin')
    const enoent = await getpage(['--out', missingDir, '--json'])
    expect(enoent.code).toBe(2)
    const e = enoent.json<{ error: { code: string; message: string; hint: string } }>().error
    expect(e.code).toBe('OUTPUT_NOT_WRITABLE')
    expect(e.message).toBe(`cannot write ${missingDir}: no such file or directory (ENOENT)`)
    expect(e.hint).toMatch(/directory/)

    const isDir = await getpage(['--out', root])
    expect(isDir.code).toBe(2)
    expect(isDir.stderr).toBe(`Error: cannot write ${root}: illegal operation on a directory (EISDIR)\nHint: The path is a directory; give a file name in it (e.g. DIR/page.bin).\n`)
    expect(isDir.stdout).toBe('')
  })

  it('timeline export -D under a file is OUTPUT_NOT_WRITABLE', async () => {
    const file = join(root, 'a-file')
    writeFileSync(file, 'x')
    const r = await runCli(['timeline', 'export', '--workdir', wd, '--tenant', tenant, '--timeline', timeline, '-D', join(file, 'pgdata'), '--offline', '--json'])
    expect(r.code).toBe(2)
    expect(r.json()).toMatchObject({ error: { code: 'OUTPUT_NOT_WRITABLE', message: expect.stringContaining(join(file, 'pgdata')) } })
  })

  it('timeline export -D naming a symbolic link is refused; the directory it points to is left as it was', async () => {
    const target = join(root, 'link-target')
    mkdirSync(target, { mode: 0o755 })
    const link = join(root, 'export-link')
    symlinkSync(target, link)
    const before = statSync(target)
    const r = await runCli(['timeline', 'export', '--workdir', wd, '--tenant', tenant, '--timeline', timeline, '-D', link, '--offline', '--json'])
    expect(r.code).toBe(4)
    expect(r.json()).toMatchObject({ error: { code: 'EXPORT_DIR_IS_SYMLINK', message: expect.stringContaining(link) } })
    const after = statSync(target)
    expect([after.mode, after.uid, after.gid]).toEqual([before.mode, before.uid, before.gid])
    expect(readdirSync(target)).toEqual([])
  })

  it('through a server, a page at an LSN not received yet says what it waits for, then times out', async () => {
    const last = parseLsn((await getpage(['--json'])).json<{ lsn: string }>().lsn)
    const early = await getpage(['--lsn', '0/100', '--json'])
    expect(early.code).toBe(2)
    const offline = early.json<{ error: { code: string; message: string; hint: string } }>().error
    expect(offline.code).toBe('LSN_BEFORE_START')
    const serve = await startServe(wd, ['-c', 'wait_lsn_timeout=4s'])
    try {
      const viaServer = await getpage(['--server', serve.pgAddr, '--lsn', '0/100', '--json'])
      expect(viaServer.code).toBe(2)
      const e = viaServer.json<{ error: { code: string; message: string; hint: string } }>().error
      expect(e.code).toBe('LSN_BEFORE_START')
      expect(e.message).toContain(offline.message)
      expect(e.hint).toBe(offline.hint)
      const future = formatLsn(last + 0x10000n)
      const t0 = Date.now()
      const r = await getpage(['--server', serve.pgAddr, '--lsn', future, '--json'])
      expect(Date.now() - t0).toBeGreaterThanOrEqual(3500)
      expect(r.code).toBe(7)
      expect(r.stderr).toContain(`still waiting for ${serve.pgAddr}: a page at ${future} whose WAL the server has not received yet`)
      // A page the server has answers at once, without the notice.
      const now = await getpage(['--server', serve.pgAddr, '--json'])
      expect(now.code, now.stderr).toBe(0)
      expect(now.stderr).not.toContain('still waiting')
      // An export at that LSN says so too (an audit's waited 5 minutes in silence).
      const ex = await runCli(['timeline', 'export', '--workdir', wd, '--tenant', tenant, '--timeline', timeline, '--server', serve.pgAddr, '--lsn', future, '-D', join(wd, 'never'), '--json'])
      expect(ex.code).toBe(7)
      expect(ex.stderr).toContain(`still waiting for ${serve.pgAddr}: a backup at ${future} whose WAL the server has not received yet`)
    } finally {
      await serve.stop()
    }
  })
})
