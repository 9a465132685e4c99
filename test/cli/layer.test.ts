// End to end: `pageserver layer list` and `layer dump` through the built CLI (npm run build first), on
// files written by the layer writers: JSON contracts, text output, exit 3 for a missing timeline or file,
// exit 5 naming the file for a corrupt one (after printing what was read before the fault).
import { execFileSync, spawn } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DeltaLayer, DeltaLayerWriter } from '../../src/core/layer/delta-layer.js'
import { ImageLayerWriter } from '../../src/core/layer/image-layer.js'
import { HEADER_BYTES } from '../../src/core/layer/layer-format.js'
import type { Lsn } from '../../src/core/pg/lsn.js'
import { encodeValue, imageValue, recordValue } from '../../src/core/model/value.js'
import { TENANT, TIMELINE, blockKey, withTempDir } from '../core/layer/helpers.js'
import { CLI_BIN, runCli } from '../support/cli.js'
import { writeMetadata } from '../../src/core/repository/metadata.js'
import { testTimelineMetadata } from '../support/timeline-fixture.js'

const L = (n: number): Lsn => BigInt(n) as Lsn

/** A real XLOG NOOP record (rmid 0, info 0x20) with 4 bytes of main data: 24 + 2 + 4 bytes. */
function noopRecord(): Buffer {
  const r = Buffer.alloc(30)
  r.writeUInt32LE(30, 0)
  r[16] = 0x20
  r[17] = 0
  r[24] = 255 // XLR_BLOCK_ID_DATA_SHORT
  r[25] = 4
  r.write('abcd', 26)
  return r
}

describe('pageserver layer list / dump', () => {
  let wd: string
  let tl: string
  let deltaPath: string
  let deltaName: string
  let imageName: string
  let missingName: string
  beforeAll(async () => {
    wd = await mkdtemp(join(tmpdir(), 'ps-cli-layer-'))
    tl = join(wd, 'tenants', TENANT, 'timelines', TIMELINE)
    await mkdir(tl, { recursive: true })
    const page = Buffer.alloc(8192, 0)
    page.write('page', 100)
    const d = await DeltaLayerWriter.create({ dir: tl, tenantId: TENANT, timelineId: TIMELINE, lsnRange: { start: L(0x1696070), end: L(0x16960e9) }, noSync: true })
    d.put(blockKey(5, 0), L(0x1696070), encodeValue(imageValue(page)))
    d.put(blockKey(5, 0), L(0x1696080), encodeValue(recordValue(noopRecord(), false)))
    d.put(blockKey(5, 1), L(0x1696090), encodeValue(recordValue(noopRecord(), true)))
    const fd = await d.finish()
    deltaPath = fd.path
    deltaName = fd.desc.name
    const i = await ImageLayerWriter.create({ dir: tl, tenantId: TENANT, timelineId: TIMELINE, keyStart: blockKey(5, 0), lsn: L(0x16960e8), noSync: true })
    i.put(blockKey(5, 0), encodeValue(imageValue(page)))
    i.put(blockKey(5, 1), encodeValue(imageValue(page)))
    imageName = (await i.finish(blockKey(6, 0))).desc.name
    await writeFile(join(tl, 'ephemeral-3'), 'scratch')
    await writeFile(join(tl, `${deltaName}.0badcafe___temp`), 'partial')
    // The metadata lists the delta and one file not there; the image is not listed.
    missingName = deltaName.replace('__0000000001696070-00000000016960E9', '__00000000016960E9-00000000016960F1')
    await writeMetadata(join(tl, 'metadata'), testTimelineMetadata({ diskConsistentLsn: L(0x16960e8), lastRecordLsn: L(0x16960e8), layers: [deltaName, missingName] }), { noSync: true })
  })
  afterAll(async () => {
    await rm(wd, { recursive: true, force: true })
  })

  it('layer list --json lists the layer files only, ordered by LSN, each with what the metadata makes of it', async () => {
    const r = await runCli(['layer', 'list', '-D', wd, '--tenant', TENANT, '--timeline', TIMELINE, '--json'])
    expect(r.code).toBe(0)
    const items = r.json<Array<Record<string, unknown>>>()
    expect(items).toEqual([
      { name: deltaName, kind: 'delta', keyStart: '0'.repeat(36), keyEnd: 'F'.repeat(36), lsnStart: '0/1696070', lsnEnd: '0/16960E9', sizeBytes: expect.any(Number), state: 'layer' },
      { name: imageName, kind: 'image', keyStart: blockKey(5, 0), keyEnd: blockKey(6, 0), lsnStart: '0/16960E8', lsnEnd: '0/16960E9', sizeBytes: expect.any(Number), state: 'not-listed' },
      { name: missingName, kind: 'delta', keyStart: '0'.repeat(36), keyEnd: 'F'.repeat(36), lsnStart: '0/16960E9', lsnEnd: '0/16960F1', sizeBytes: null, state: 'missing' },
    ])
    expect(items[0]!.sizeBytes).toBe((await readFile(deltaPath)).length)
    expect(r.stderr).toContain(`warning: ${imageName} is not one of the timeline's layers`)
    expect(r.stderr).toContain(`warning: ${missingName} is listed in the timeline's metadata but is not in `)
  })

  it('layer list prints a table', async () => {
    const r = await runCli(['layer', 'list', '-D', wd, '--tenant', TENANT, '--timeline', TIMELINE])
    expect(r.code).toBe(0)
    expect(r.stdout).toContain('Kind')
    expect(r.stdout).toContain('all keys (L0)')
    expect(r.stdout).toContain('0/1696070 .. 0/16960E9')
    expect(r.stdout).toContain('@ 0/16960E8')
    expect(r.stdout).toContain('2 layer files')
    expect(r.stdout).toContain('not-listed')
    expect(r.stdout).toContain('missing')
  })

  it('layer list: a missing timeline exits 3, a bad id exits 2', async () => {
    const missing = await runCli(['layer', 'list', '-D', wd, '--tenant', TENANT, '--timeline', TENANT, '--json'])
    expect(missing.code).toBe(3)
    expect(missing.json()).toMatchObject({ error: { code: 'TIMELINE_NOT_FOUND' } })
    const noWorkdir = await runCli(['layer', 'list', '-D', join(wd, 'no-such-workdir'), '--tenant', TENANT, '--timeline', TIMELINE, '--json'])
    expect(noWorkdir.code).toBe(3)
    expect(noWorkdir.json()).toMatchObject({ error: { code: 'WORKDIR_NOT_FOUND' } })
    const bad = await runCli(['layer', 'list', '-D', wd, '--tenant', 'xyz', '--timeline', TIMELINE])
    expect(bad.code).toBe(2)
  })

  it('layer dump prints the summary and one line per entry, with WAL record names', async () => {
    const r = await runCli(['layer', 'dump', deltaPath])
    expect(r.stderr).toBe('')
    expect(r.code).toBe(0)
    expect(r.stdout).toContain(`Layer file ${deltaPath}`)
    expect(r.stdout).toContain('kind:       delta')
    expect(r.stdout).toContain(`tenant:     ${TENANT}`)
    expect(r.stdout).toContain('entries:    3 (2 keys)')
    const lines = r.stdout.split('\n').filter((l) => l.startsWith(blockKey(5, 0).slice(0, 10)))
    expect(lines).toEqual([
      `${blockKey(5, 0)} 0/1696070 image 8192 will-init (rel 1663/5/5 main blk 0)`,
      `${blockKey(5, 0)} 0/1696080 record 30 - XLOG/NOOP (rel 1663/5/5 main blk 0)`,
      `${blockKey(5, 1)} 0/1696090 record 30 will-init XLOG/NOOP (rel 1663/5/5 main blk 1)`,
    ])
    expect(r.stdout).toContain('3 entries, all checksums valid')
    const v = await runCli(['layer', 'dump', deltaPath, '--values'])
    expect(v.stdout).toContain(`  ${noopRecord().toString('hex')}\n`)
  })

  it('layer dump --json prints JSON lines: summary, entries, end', async () => {
    const r = await runCli(['layer', 'dump', join(tl, imageName), '--json', '--values'])
    expect(r.code).toBe(0)
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l))
    expect(lines[0].summary).toMatchObject({ kind: 'image', name: imageName, lsnStart: '0/16960E8', lsnEnd: '0/16960E9', entryCount: 2, keyCount: 2, tenantId: TENANT, timelineId: TIMELINE, codec: 'lz4' })
    expect(lines[1]).toMatchObject({ key: blockKey(5, 0), object: 'rel 1663/5/5 main blk 0', lsn: '0/16960E8', kind: 'image', lengthBytes: 8192, willInit: true, rmgr: null, type: null })
    expect(lines[1].storedBytes).toBeLessThan(8194) // compressed
    expect(Buffer.from(lines[1].data, 'hex').subarray(100, 104).toString()).toBe('page')
    expect(lines[3]).toEqual({ end: { entries: 2 } })
    expect(lines.length).toBe(4)
  })

  it('layer dump: corruption exits 5 naming the file, a missing file exits 3', async () => {
    await withTempDir('ps-cli-layer-bad-', async (dir) => {
      const bytes = await readFile(deltaPath)
      const bad = join(dir, 'bad-layer')
      const layer = DeltaLayer.open(deltaPath)
      const { valueBytes } = layer.dumpSummary()
      layer.close()
      const flipped = Buffer.from(bytes)
      flipped[HEADER_BYTES + valueBytes - 1] ^= 0xff // inside the last value
      await writeFile(bad, flipped)
      const r = await runCli(['layer', 'dump', bad])
      expect(r.code).toBe(5)
      expect(r.stderr).toContain(bad)
      expect(r.stderr).toContain('Hint: Restore the file from a backup')
      expect(r.stderr).not.toContain('delete it so') // no remote storage copy exists to download again
      expect(r.stdout).toContain('0/1696080 record 30') // entries before the fault were printed
      const j = await runCli(['layer', 'dump', bad, '--json'])
      expect(j.code).toBe(5)
      const last = JSON.parse(j.stdout.trim().split('\n').at(-1)!)
      expect(last.error.code).toBe('LAYER_CORRUPT')
      expect(last.error.message).toContain(bad)

      // The first value damaged too: the scan goes past each fault, so the whole extent shows.
      flipped[HEADER_BYTES + 2] ^= 0xff
      await writeFile(bad, flipped)
      const both = await runCli(['layer', 'dump', bad])
      expect(both.code).toBe(5)
      expect(both.stdout.match(/^FAULT: .*fails its checksum$/gm)).toHaveLength(2)
      expect(both.stderr).toContain(`2 faults in ${bad} (1 entries intact); the first:`)
      const bothJson = (await runCli(['layer', 'dump', bad, '--json'])).stdout.trim().split('\n').map((l) => JSON.parse(l))
      expect(bothJson.filter((l) => l.fault !== undefined).map((l) => l.fault.code)).toEqual(['LAYER_CORRUPT', 'LAYER_CORRUPT'])
      expect(bothJson.filter((l) => l.key !== undefined)).toHaveLength(1)
      expect(bothJson.at(-1).error).toMatchObject({ code: 'LAYER_CORRUPT', message: expect.stringContaining('2 faults') })

      await writeFile(bad, bytes.subarray(0, 100))
      const t = await runCli(['layer', 'dump', bad, '--json'])
      expect(t.code).toBe(5)
      expect(t.json()).toMatchObject({ error: { code: 'LAYER_CORRUPT' } })

      await writeFile(bad, 'not a layer, just some text\n')
      const n = await runCli(['layer', 'dump', bad, '--json'])
      expect(n.code).toBe(5)
      expect(n.json()).toMatchObject({ error: { code: 'LAYER_CORRUPT', message: `${bad} is not a layer file (it starts with 0x6e6f7420, not PSDL or PSIM)` } })
      expect(n.json().error.hint).toContain('Give the path of a delta or image layer file')

      const m = await runCli(['layer', 'dump', join(dir, 'missing')])
      expect(m.code).toBe(3)
      expect(m.stderr).toContain('missing')
    })
  })

  it('layer dump: an intact file under another layer\'s name, or in another tenant\'s timeline, is dumped, then LAYER_MISPLACED (exit 5)', async () => {
    await withTempDir('ps-cli-layer-misplaced-', async (dir) => {
      const bytes = await readFile(deltaPath)
      // A copy under a name that is no layer's: nothing is expected of it, so it is simply dumped.
      const copy = join(dir, 'copy-of-layer')
      await writeFile(copy, bytes)
      const ok = await runCli(['layer', 'dump', copy])
      expect(ok.code).toBe(0)
      expect(ok.stdout).toContain('3 entries, all checksums valid')

      // Under the image layer's name: the page server would refuse it there.
      const renamed = join(dir, imageName)
      await writeFile(renamed, bytes)
      const r = await runCli(['layer', 'dump', renamed])
      expect(r.code).toBe(5)
      expect(r.stdout).toContain('0/1696080 record 30') // the entries were dumped first
      expect(r.stdout).not.toContain('all checksums valid')
      expect(r.stderr).toContain(`its header describes layer ${deltaName}, not ${imageName}`)
      expect(r.stderr).toContain('Hint: Its contents are intact')

      // Under its own name, in another tenant's timeline directory.
      const other = join(dir, 'tenants', 'ab'.repeat(16), 'timelines', TIMELINE)
      await mkdir(other, { recursive: true })
      await writeFile(join(other, deltaName), bytes)
      const j = await runCli(['layer', 'dump', join(other, deltaName), '--json'])
      expect(j.code).toBe(5)
      const lines = j.stdout.trim().split('\n').map((l) => JSON.parse(l))
      expect(lines[0].summary.tenantId).toBe(TENANT)
      expect(lines.at(-1).error).toMatchObject({ code: 'LAYER_MISPLACED' })
      expect(lines.at(-1).error.message).toContain(`it belongs to tenant ${TENANT}`)
    })
  })

  it('layer dump: a directory, a path through a file, or a FIFO exits 2 naming the path (never hangs)', async () => {
    await withTempDir('ps-cli-layer-path-', async (dir) => {
      const d = await runCli(['layer', 'dump', dir, '--json'])
      expect(d.code).toBe(2)
      expect(d.json().error).toMatchObject({ code: 'NOT_A_REGULAR_FILE', message: expect.stringContaining(dir) })
      expect(d.json().error.hint).not.toMatch(/disk|permission/)
      const through = join(deltaPath, 'x')
      const n = await runCli(['layer', 'dump', through, '--json'])
      expect(n.code).toBe(2)
      expect(n.json().error).toMatchObject({ code: 'PATH_NOT_A_DIRECTORY', message: expect.stringContaining(through) })
      const fifo = join(dir, 'fifo')
      execFileSync('mkfifo', [fifo])
      const f = await runCli(['layer', 'dump', fifo], { timeoutMs: 20_000 })
      expect(f.timedOut).toBe(false)
      expect(f.code).toBe(2)
      expect(f.stderr).toContain(`${fifo} is not a regular file: it is a FIFO`)
    })
  })

  it('layer dump lists at most 10,000 faults and counts the rest (a damaged value area can hold millions)', async () => {
    await withTempDir('ps-cli-layer-faults-', async (dir) => {
      const d = await DeltaLayerWriter.create({ dir, tenantId: TENANT, timelineId: TIMELINE, lsnRange: { start: L(0x1000000), end: L(0x2000000) }, noSync: true })
      const entries = 10_005
      for (let blk = 0; blk < entries; blk++) {
        if (!d.put(blockKey(5, blk), L(0x1000000 + blk * 8), encodeValue(imageValue(Buffer.alloc(16, blk & 0xff))))) await d.drain()
      }
      const file = (await d.finish()).path
      const layer = DeltaLayer.open(file)
      const { valueBytes } = layer.dumpSummary()
      layer.close()
      const bytes = await readFile(file)
      bytes.fill(0xa5, HEADER_BYTES, HEADER_BYTES + valueBytes) // every value damaged
      const bad = join(dir, 'bad-layer')
      await writeFile(bad, bytes)
      const r = await runCli(['layer', 'dump', bad])
      expect(r.code).toBe(5)
      expect(r.stdout.match(/^FAULT: /gm)).toHaveLength(10_000)
      expect(r.stderr).toContain(`${entries} faults in ${bad} (0 entries intact, 5 of them not listed); the first:`)
    })
  })

  it('layer dump waits for a reader that stops reading instead of queueing the whole dump in memory', async () => {
    await withTempDir('ps-cli-layer-big-', async (dir) => {
      // 4,000 distinct 8 KiB images (32 MiB, stored uncompressed in a delta layer): printed with --values, 64 MiB of hex.
      const d = await DeltaLayerWriter.create({ dir, tenantId: TENANT, timelineId: TIMELINE, lsnRange: { start: L(0x1000000), end: L(0x2000000) }, noSync: true })
      const page = Buffer.alloc(8192)
      const entries = 4000
      for (let blk = 0; blk < entries; blk++) {
        for (let i = 0; i < page.length; i += 4) page.writeUInt32LE((blk * 2654435761 + i * 40503) >>> 0, i)
        if (!d.put(blockKey(5, blk), L(0x1000000 + blk * 8), encodeValue(imageValue(page)))) await d.drain()
      }
      const file = (await d.finish()).path
      const fileBytes = (await stat(file)).size
      const child = spawn(process.execPath, [CLI_BIN, 'layer', 'dump', file, '--values', '--json'], { env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] })
      child.stdout.pause() // a pager that shows one screen and waits: the pipe fills and stays full
      const exited = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))
      // Bytes the process has read through read(2)/pread(2), its own start-up included.
      const readBytes = async (): Promise<number> => Number(/^rchar: (\d+)$/m.exec(await readFile(`/proc/${child.pid}/io`, 'utf8'))![1])
      try {
        let seen = -1
        for (let i = 0; i < 60; i++) {
          await new Promise((r) => setTimeout(r, 250))
          const now = await readBytes()
          if (now === seen) break
          seen = now
        }
        // Before: the entries were read and formatted in one synchronous loop, the whole dump (64 MiB and more)
        // queued on stdout; now the dump stops a few batches in, when the pipe is full.
        expect(seen).toBeLessThan(fileBytes / 2)
        let out = ''
        child.stdout.setEncoding('utf8')
        child.stdout.on('data', (c: string) => (out += c))
        child.stdout.resume()
        expect(await exited).toBe(0)
        expect(JSON.parse(out.trim().split('\n').at(-1)!)).toEqual({ end: { entries } })
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL')
      }
    })
  }, 60_000)
})
