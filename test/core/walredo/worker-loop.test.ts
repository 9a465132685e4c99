import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { CorruptionError, PageserverError, UnsupportedError } from '../../../src/core/lib/errors.js'
import { lsn } from '../../../src/core/pg/lsn.js'
import type { BufferTag } from '../../../src/core/pg/reltag.js'
import type { RedoOptions, RedoRecord } from '../../../src/core/redo/engine.js'
import { SlruFork, slruBufferTag } from '../../../src/core/walredo/buffer-tag-codec.js'
import { PAGE_BYTES, encodePing, encodeRedoRequest } from '../../../src/core/walredo/protocol.js'
import {
  REDO_ERROR_LINE_MAX_BYTES,
  REDO_ERROR_PREFIX,
  errorFromReport,
  formatRedoErrorLine,
  parseRedoErrorLine,
} from '../../../src/core/walredo/redo-error-line.js'
import { runWorker, runWorkerOnFds, writeAllSync, type RedoFn } from '../../../src/core/walredo/worker-loop.js'

const TAG: BufferTag = { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0, blkno: 7 }

function record(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len, seed)
  b.writeUInt32LE(len, 0)
  return b
}

interface Call {
  tag: BufferTag
  base: Buffer | null
  records: RedoRecord[]
  opts: RedoOptions
}

/** A redo function that remembers its calls and returns a page naming the call number. */
function fakeRedo(): { fn: RedoFn; calls: Call[] } {
  const calls: Call[] = []
  const fn: RedoFn = (tag, base, records, opts) => {
    calls.push({ tag, base: base === null ? null : Buffer.from(base), records: records.map((r) => ({ endLsn: r.endLsn, raw: Buffer.from(r.raw) })), opts })
    const page = Buffer.alloc(PAGE_BYTES, calls.length)
    return page
  }
  return { fn, calls }
}

async function drive(chunks: Buffer[], fn: RedoFn, hintBitsLogged = false) {
  const out = new PassThrough()
  const got: Buffer[] = []
  out.on('data', (c: Buffer) => got.push(c))
  const summary = await runWorker(Readable.from(chunks), out, fn, { hintBitsLogged })
  return { summary, output: Buffer.concat(got) }
}

async function driveError(chunks: Buffer[], fn: RedoFn, limits = {}): Promise<PageserverError> {
  const out = new PassThrough()
  out.resume()
  try {
    await runWorker(Readable.from(chunks), out, fn, { hintBitsLogged: false, limits })
  } catch (err) {
    expect(err).toBeInstanceOf(PageserverError)
    return err as PageserverError
  }
  throw new Error('runWorker did not fail')
}

describe('runWorker (in-process)', () => {
  it('serves B P A A G, a ping, and B A G with per-request state, then ends on EOF', async () => {
    const base = Buffer.alloc(PAGE_BYTES, 0x5a)
    const r1 = record(24, 1)
    const r2 = record(100, 2)
    const clog = slruBufferTag(SlruFork.Clog, 0, 1)
    const input = Buffer.concat([
      encodeRedoRequest({ tag: TAG, base, records: [{ endLsn: lsn(0x10n), raw: r1 }, { endLsn: lsn(0x20n), raw: r2 }] }),
      encodePing(),
      encodeRedoRequest({ tag: clog, base: null, records: [{ endLsn: lsn(0x30n), raw: r1 }] }),
    ])
    // Split at an awkward offset inside the pushed page, as a pipe may deliver it.
    const { fn, calls } = fakeRedo()
    const { summary, output } = await drive([input.subarray(0, 4000), input.subarray(4000, 4001), input.subarray(4001)], fn, true)
    expect(summary).toEqual({ requests: 2, pings: 1, truncated: false })
    expect(output.length).toBe(3 * PAGE_BYTES)
    expect(output.subarray(0, PAGE_BYTES).every((b) => b === 1)).toBe(true)
    expect(output.subarray(PAGE_BYTES, 2 * PAGE_BYTES).every((b) => b === 0)).toBe(true)
    expect(output.subarray(2 * PAGE_BYTES).every((b) => b === 2)).toBe(true)
    expect(calls).toHaveLength(2)
    expect(calls[0]!.tag).toEqual(TAG)
    expect(calls[0]!.base!.equals(base)).toBe(true)
    expect(calls[0]!.records.map((r) => r.endLsn)).toEqual([0x10n, 0x20n])
    expect(calls[0]!.records[1]!.raw.equals(r2)).toBe(true)
    expect(calls[0]!.opts).toEqual({ hintBitsLogged: true })
    expect(calls[1]!.tag).toEqual(clog)
    expect(calls[1]!.base).toBeNull()
    expect(calls[1]!.records).toHaveLength(1)
  })

  it('accepts input one byte at a time', async () => {
    const input = encodeRedoRequest({ tag: TAG, base: Buffer.alloc(PAGE_BYTES), records: [{ endLsn: lsn(8), raw: record(40, 3) }] })
    const chunks = Array.from(input, (b) => Buffer.from([b]))
    const { fn, calls } = fakeRedo()
    const { output } = await drive(chunks, fn)
    expect(output.length).toBe(PAGE_BYTES)
    expect(calls[0]!.records[0]!.raw.equals(record(40, 3))).toBe(true)
  })

  it('ends normally on EOF in the middle of a request and reports it truncated', async () => {
    const input = encodeRedoRequest({ tag: TAG, base: null, records: [{ endLsn: lsn(8), raw: record(24, 3) }] })
    const { fn, calls } = fakeRedo()
    const { summary, output } = await drive([input.subarray(0, input.length - 3)], fn)
    expect(summary.truncated).toBe(true)
    expect(output.length).toBe(0)
    expect(calls).toHaveLength(0)
  })

  it('rejects messages out of order', async () => {
    const { fn } = fakeRedo()
    const req = encodeRedoRequest({ tag: TAG, base: Buffer.alloc(PAGE_BYTES), records: [{ endLsn: lsn(8), raw: record(24, 3) }] })
    // req = B(22) P(8214) A(37) G(22)
    const B = req.subarray(0, 22)
    const P = req.subarray(22, 22 + 8214)
    const A = req.subarray(22 + 8214, 22 + 8214 + 37)
    const G = req.subarray(22 + 8214 + 37)
    const other = encodeRedoRequest({ tag: { ...TAG, blkno: 8 }, base: null, records: [] })
    for (const bad of [
      [A],
      [G],
      [P],
      [B, B],
      [B, A, P],
      [B, other.subarray(22)],
      [B, encodePing()],
    ]) {
      const err = await driveError(bad, fn)
      expect(err).toBeInstanceOf(CorruptionError)
      expect(err.code).toBe('WALREDO_OUT_OF_ORDER')
    }
  })

  it('rejects a record whose xl_tot_len does not match, and requests over the limits', async () => {
    const { fn } = fakeRedo()
    const bad = record(30, 1)
    bad.writeUInt32LE(31, 0)
    // Built by hand: the encoder refuses this record.
    const a = Buffer.concat([Buffer.from([0x41, 0, 0, 0, 4 + 8 + 30]), Buffer.alloc(8), bad])
    const b = encodeRedoRequest({ tag: TAG, base: null, records: [] }).subarray(0, 22)
    expect((await driveError([b, a], fn)).code).toBe('WALREDO_BAD_RECORD')
    const three = encodeRedoRequest({ tag: TAG, base: null, records: [1, 2, 3].map((i) => ({ endLsn: lsn(i), raw: record(24, i) })) })
    const tooMany = await driveError([three], fn, { requestRecordsMax: 2 })
    expect(tooMany).toBeInstanceOf(UnsupportedError)
    expect(tooMany.code).toBe('WALREDO_REQUEST_TOO_LARGE')
    expect((await driveError([three], fn, { requestRecordBytesMax: 50 })).code).toBe('WALREDO_REQUEST_TOO_LARGE')
    expect((await driveError([Buffer.from([0x41, 0xff, 0xff, 0xff, 0xff])], fn)).code).toBe('WALREDO_MESSAGE_TOO_LARGE')
  })

  it('passes the engine error through and refuses a page of the wrong size', async () => {
    const req = encodeRedoRequest({ tag: TAG, base: null, records: [{ endLsn: lsn(8), raw: record(24, 3) }] })
    const unsupported = await driveError([req], () => {
      throw new UnsupportedError('REDO_UNSUPPORTED_RECORD', 'no redo for Hash/INSERT', { details: { rmgr: 'Hash' } })
    })
    expect(unsupported.code).toBe('REDO_UNSUPPORTED_RECORD')
    expect(unsupported.details).toEqual({ rmgr: 'Hash' })
    const short = await driveError([req], () => Buffer.alloc(100))
    expect(short.kind).toBe('internal')
    expect(short.code).toBe('WALREDO_BAD_PAGE_SIZE')
  })
})

describe('runWorkerOnFds (blocking reads, gathered writes)', () => {
  /** Runs the fd driver from a file holding `input` to a file; returns the summary or error and the output. */
  function onFiles(input: Buffer, fn: RedoFn): { summary?: unknown; error?: unknown; output: Buffer } {
    const dir = mkdtempSync(join(tmpdir(), 'ps-worker-fds-'))
    try {
      writeFileSync(join(dir, 'in'), input)
      const inFd = openSync(join(dir, 'in'), 'r')
      const outFd = openSync(join(dir, 'out'), 'w')
      let summary: unknown
      let error: unknown
      try {
        summary = runWorkerOnFds(inFd, outFd, fn, { hintBitsLogged: false })
      } catch (e) {
        error = e
      } finally {
        closeSync(inFd)
        closeSync(outFd)
      }
      return { summary, error, output: readFileSync(join(dir, 'out')) }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }

  it('answers every request and ping in order, reusing its reply pages, and ends at EOF', () => {
    const parts: Buffer[] = []
    for (let i = 0; i < 200; i++) {
      parts.push(i % 4 === 0 ? encodePing() : encodeRedoRequest({ tag: { ...TAG, blkno: i }, base: i % 2 ? Buffer.alloc(PAGE_BYTES, i) : null, records: [{ endLsn: lsn(8), raw: record(40, i) }] }))
    }
    const fn: RedoFn = (tag, _base, _records, _opts, out) => {
      out!.fill(tag.blkno & 0xff)
      return out!
    }
    const { summary, error, output } = onFiles(Buffer.concat(parts), fn)
    expect(error).toBeUndefined()
    expect(summary).toEqual({ requests: 150, pings: 50, truncated: false })
    expect(output.length).toBe(200 * PAGE_BYTES)
    for (let i = 0; i < 200; i++) {
      const page = output.subarray(i * PAGE_BYTES, (i + 1) * PAGE_BYTES)
      expect(page.every((b) => b === (i % 4 === 0 ? 0 : i & 0xff))).toBe(true)
    }
  })

  it('writes the replies of the requests before a failing one, then throws', () => {
    const input = Buffer.concat([encodePing(), encodeRedoRequest({ tag: TAG, base: null, records: [{ endLsn: lsn(8), raw: record(24, 1) }] }), encodePing()])
    const { error, output } = onFiles(input, () => {
      throw new UnsupportedError('REDO_UNSUPPORTED_RECORD', 'no redo for Hash/INSERT')
    })
    expect((error as PageserverError).code).toBe('REDO_UNSUPPORTED_RECORD')
    expect(output.length).toBe(PAGE_BYTES)
  })

  it('writeAllSync writes every buffer in order', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ps-writeall-'))
    try {
      const fd = openSync(join(dir, 'out'), 'w')
      const bufs = Array.from({ length: 1500 }, (_, i) => Buffer.alloc(1 + (i % 13), i & 0xff))
      writeAllSync(fd, bufs)
      closeSync(fd)
      expect(readFileSync(join(dir, 'out')).equals(Buffer.concat(bufs))).toBe(true)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

describe('pageserver-redo-error line', () => {
  it('round-trips kind, code, message, hint and details (bigints as text)', () => {
    const err = new UnsupportedError('REDO_UNSUPPORTED_RECORD', 'no redo for Btree/SPLIT_L', {
      hint: 'wait for an image',
      details: { rmgr: 'Btree', lsn: '0/16B3748', xid: 123n },
    })
    const line = formatRedoErrorLine(err)
    expect(line.startsWith(REDO_ERROR_PREFIX)).toBe(true)
    expect(line).not.toContain('\n')
    const report = parseRedoErrorLine(line)!
    expect(report).toEqual({
      kind: 'unsupported',
      code: 'REDO_UNSUPPORTED_RECORD',
      message: 'no redo for Btree/SPLIT_L',
      hint: 'wait for an image',
      details: { rmgr: 'Btree', lsn: '0/16B3748', xid: '123' },
    })
    const back = errorFromReport(report, { pid: 42 })
    expect(back).toBeInstanceOf(UnsupportedError)
    expect(back.details).toEqual({ rmgr: 'Btree', lsn: '0/16B3748', xid: '123', pid: 42 })
  })

  it('describes foreign errors as internal, and bounds the line', () => {
    expect(parseRedoErrorLine(formatRedoErrorLine(new TypeError('x is undefined')))).toMatchObject({
      kind: 'internal',
      code: 'WALREDO_WORKER_BUG',
    })
    const big = new CorruptionError('BIG', 'm', { details: { blob: 'x'.repeat(100_000) } })
    const line = formatRedoErrorLine(big)
    expect(Buffer.byteLength(line)).toBeLessThanOrEqual(REDO_ERROR_LINE_MAX_BYTES)
    expect(parseRedoErrorLine(line)).toEqual({ kind: 'corruption', code: 'BIG', message: 'm' })
  })

  it('ignores lines that are not well-formed reports', () => {
    for (const line of [
      'plain log line',
      `${REDO_ERROR_PREFIX}not json`,
      `${REDO_ERROR_PREFIX}[1,2]`,
      `${REDO_ERROR_PREFIX}{"kind":"bogus","code":"X","message":"m"}`,
      `${REDO_ERROR_PREFIX}{"kind":"usage","code":"lower","message":"m"}`,
      `${REDO_ERROR_PREFIX}{"kind":"usage","code":"X","message":5}`,
      `${REDO_ERROR_PREFIX}{"kind":"usage","code":"X","message":"m","details":[1]}`,
    ]) {
      expect(parseRedoErrorLine(line)).toBeNull()
    }
  })
})
