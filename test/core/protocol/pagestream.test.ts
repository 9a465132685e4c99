/**
 * The pagestream codec against bytes written out by hand from the layouts in Neon's pagestream_api.rs /
 * pagestore_client.h (reference section 14): every request and response, v2 and v3, every truncation,
 * trailing bytes, bad tags, oversized SLRU counts, and a stream of CopyData frames split at every offset.
 */
import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeRequestFrame,
  encodeResponse,
  encodeResponseFrame,
  requestBytes,
  type PagestreamRequest,
  type PagestreamResponse,
  type PagestreamVersion,
} from '../../../src/core/protocol/pagestream.js'
import { FrameReader } from '../../../src/core/protocol/pg-frames.js'
import { lsn } from '../../../src/core/pg/lsn.js'

const hex = (...parts: string[]): Buffer => Buffer.from(parts.join('').replace(/\s+/g, ''), 'hex')

// Shared pieces, written out by hand.
const LSN_A = '00000000016b3748' // 0/16B3748
const LSN_B = '0000000001000000' // 0/1000000
const REQID = '00000000000000ff' // 255
const REL_HEX = '0000067f 00000005 00004000 00' // 1663/5/16384 main, fork last
const REL_VM_HEX = '0000067f 00000005 00004001 02' // 1663/5/16385 vm
const rel = { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0 }
const relVm = { spcNode: 1663, dbNode: 5, relNode: 16385, forkNum: 2 }
const hdr2 = { reqid: 0n, request_lsn: lsn(0x16b3748), not_modified_since: lsn(0x1000000) }
const hdr3 = { reqid: 255n, request_lsn: lsn(0x16b3748), not_modified_since: lsn(0x1000000) }

/** Truncated lengths of `bytes` that `decode` did not refuse with `expected` (a plain loop: 16,000 expect() calls are slow). */
function notRefused(bytes: Buffer, decode: (b: Buffer) => unknown, expected: RegExp): string[] {
  const out: string[] = []
  for (let n = 0; n < bytes.length; n++) {
    try {
      decode(bytes.subarray(0, n))
      out.push(`${n}: accepted`)
    } catch (err) {
      if (!expected.test((err as Error).message)) out.push(`${n}: ${(err as Error).message}`)
    }
  }
  return out
}

interface RequestCase {
  name: string
  version: PagestreamVersion
  bytes: Buffer
  req: PagestreamRequest
}

const requestCases: RequestCase[] = [
  { name: 'Exists v2', version: 2, bytes: hex('00', LSN_A, LSN_B, REL_HEX), req: { type: 'exists', hdr: hdr2, rel } },
  { name: 'Exists v3', version: 3, bytes: hex('00', REQID, LSN_A, LSN_B, REL_HEX), req: { type: 'exists', hdr: hdr3, rel } },
  { name: 'Nblocks v2', version: 2, bytes: hex('01', LSN_A, LSN_B, REL_VM_HEX), req: { type: 'nblocks', hdr: hdr2, rel: relVm } },
  { name: 'Nblocks v3', version: 3, bytes: hex('01', REQID, LSN_A, LSN_B, REL_VM_HEX), req: { type: 'nblocks', hdr: hdr3, rel: relVm } },
  { name: 'GetPage v2', version: 2, bytes: hex('02', LSN_A, LSN_B, REL_HEX, '00000007'), req: { type: 'getpage', hdr: hdr2, rel, blkno: 7 } },
  { name: 'GetPage v3', version: 3, bytes: hex('02', REQID, LSN_A, LSN_B, REL_HEX, 'fffffffe'), req: { type: 'getpage', hdr: hdr3, rel, blkno: 0xfffffffe } },
  { name: 'DbSize v2', version: 2, bytes: hex('03', LSN_A, LSN_B, '00000005'), req: { type: 'dbsize', hdr: hdr2, dbnode: 5 } },
  { name: 'DbSize v3', version: 3, bytes: hex('03', REQID, LSN_A, LSN_B, '00003039'), req: { type: 'dbsize', hdr: hdr3, dbnode: 12345 } },
  { name: 'GetSlruSegment v2', version: 2, bytes: hex('04', LSN_A, LSN_B, '01', '00000010'), req: { type: 'slru', hdr: hdr2, kind: 1, segno: 16 } },
  { name: 'GetSlruSegment v3', version: 3, bytes: hex('04', REQID, LSN_A, LSN_B, '02', '00000000'), req: { type: 'slru', hdr: hdr3, kind: 2, segno: 0 } },
]

describe('pagestream requests', () => {
  it('have Neon sizes: 30/38, 34/42, 21/29, 22/30', () => {
    expect([2, 3].map((v) => requestBytes('exists', v as PagestreamVersion))).toEqual([30, 38])
    expect([2, 3].map((v) => requestBytes('nblocks', v as PagestreamVersion))).toEqual([30, 38])
    expect([2, 3].map((v) => requestBytes('getpage', v as PagestreamVersion))).toEqual([34, 42])
    expect([2, 3].map((v) => requestBytes('dbsize', v as PagestreamVersion))).toEqual([21, 29])
    expect([2, 3].map((v) => requestBytes('slru', v as PagestreamVersion))).toEqual([22, 30])
  })

  for (const c of requestCases) {
    it(`${c.name}: decodes hand-built bytes and encodes them back`, () => {
      expect(c.bytes.length).toBe(requestBytes(c.req.type, c.version))
      expect(decodeRequest(c.bytes, c.version)).toEqual(c.req)
      expect(encodeRequest(c.req, c.version).equals(c.bytes)).toBe(true)
      const frame = encodeRequestFrame(c.req, c.version)
      expect(frame.subarray(0, 5).equals(hex('64', (4 + c.bytes.length).toString(16).padStart(8, '0')))).toBe(true)
    })

    it(`${c.name}: every truncation and any trailing byte is refused`, () => {
      expect(notRefused(c.bytes, (b) => decodeRequest(b, c.version), /^malformed pagestream request/)).toEqual([])
      expect(() => decodeRequest(Buffer.concat([c.bytes, hex('00')]), c.version)).toThrow(/unexpected bytes/)
    })
  }

  it('a v3 request on a v2 stream is refused (8 bytes too long), and a v2 request on a v3 stream too', () => {
    const v3 = requestCases.find((c) => c.name === 'GetPage v3')!
    const v2 = requestCases.find((c) => c.name === 'GetPage v2')!
    expect(() => decodeRequest(v3.bytes, 2)).toThrow(/unexpected bytes/)
    expect(() => decodeRequest(v2.bytes, 3)).toThrow(/truncated/)
  })

  it('unknown tags are refused (including the testing-only 99)', () => {
    for (const tag of [5, 99, 100, 255]) {
      const b = hex(tag.toString(16).padStart(2, '0'), LSN_A, LSN_B, REL_HEX)
      expect(() => decodeRequest(b, 2)).toThrow(`invalid tag ${tag}`)
    }
  })
})

const PAGE = Buffer.alloc(8192)
for (let i = 0; i < 8192; i++) PAGE[i] = (i * 7) & 0xff
const PAGE_HEX = PAGE.toString('hex')
const SEG2 = Buffer.concat([Buffer.alloc(8192, 1), Buffer.alloc(8192, 2)])

interface ResponseCase {
  name: string
  version: PagestreamVersion
  bytes: Buffer
  resp: PagestreamResponse
}

const getpage3 = requestCases.find((c) => c.name === 'GetPage v3')!.req
const exists3 = requestCases.find((c) => c.name === 'Exists v3')!.req
const nblocks3 = requestCases.find((c) => c.name === 'Nblocks v3')!.req
const dbsize3 = requestCases.find((c) => c.name === 'DbSize v3')!.req
const slru3 = requestCases.find((c) => c.name === 'GetSlruSegment v3')!.req

const responseCases: ResponseCase[] = [
  { name: 'Exists v2', version: 2, bytes: hex('64', '01'), resp: { type: 'exists', req: exists3 as never, exists: true } },
  { name: 'Nblocks v2', version: 2, bytes: hex('65', '0000000a'), resp: { type: 'nblocks', req: nblocks3 as never, n_blocks: 10 } },
  { name: 'GetPage v2', version: 2, bytes: hex('66', PAGE_HEX), resp: { type: 'getpage', req: getpage3 as never, page: PAGE } },
  { name: 'Error v2', version: 2, bytes: hex('67', Buffer.from('Bad request: oops').toString('hex'), '00'), resp: { type: 'error', hdr: hdr3, message: 'Bad request: oops' } },
  { name: 'DbSize v2', version: 2, bytes: hex('68', 'fffffffffffffffe'), resp: { type: 'dbsize', req: dbsize3 as never, db_size: -2n } },
  { name: 'GetSlruSegment v2', version: 2, bytes: hex('69', '00000002', SEG2.toString('hex')), resp: { type: 'slru', req: slru3 as never, segment: SEG2 } },
  { name: 'Exists v3', version: 3, bytes: hex('64', REQID, LSN_A, LSN_B, REL_HEX, '00'), resp: { type: 'exists', req: exists3 as never, exists: false } },
  { name: 'Nblocks v3', version: 3, bytes: hex('65', REQID, LSN_A, LSN_B, REL_VM_HEX, '00010000'), resp: { type: 'nblocks', req: nblocks3 as never, n_blocks: 65536 } },
  {
    name: 'GetPage v3',
    version: 3,
    bytes: hex('66', REQID, LSN_A, LSN_B, REL_HEX, 'fffffffe', PAGE_HEX),
    resp: { type: 'getpage', req: getpage3 as never, page: PAGE },
  },
  { name: 'Error v3', version: 3, bytes: hex('67', REQID, LSN_A, LSN_B, Buffer.from('Read error: ü').toString('hex'), '00'), resp: { type: 'error', hdr: hdr3, message: 'Read error: ü' } },
  { name: 'DbSize v3', version: 3, bytes: hex('68', REQID, LSN_A, LSN_B, '00003039', '0000000000d00000'), resp: { type: 'dbsize', req: dbsize3 as never, db_size: 0xd00000n } },
  {
    name: 'GetSlruSegment v3',
    version: 3,
    bytes: hex('69', REQID, LSN_A, LSN_B, '02', '00000000', '00000002', SEG2.toString('hex')),
    resp: { type: 'slru', req: slru3 as never, segment: SEG2 },
  },
]

/** What the decoder should give for a case: the echo is the request in v3 and null in v2. */
function expectedDecoded(c: ResponseCase): unknown {
  const r = c.resp
  const echo = c.version === 3 ? (r.type === 'error' ? r.hdr : r.req) : null
  switch (r.type) {
    case 'exists':
      return { type: 'exists', echo, exists: r.exists }
    case 'nblocks':
      return { type: 'nblocks', echo, n_blocks: r.n_blocks }
    case 'getpage':
      return { type: 'getpage', echo, page: Buffer.from(r.page) }
    case 'dbsize':
      return { type: 'dbsize', echo, db_size: r.db_size }
    case 'slru':
      return { type: 'slru', echo, segment: Buffer.from(r.segment) }
    case 'error':
      return { type: 'error', echo, message: r.message }
  }
}

describe('pagestream responses', () => {
  it('v3 sizes are Neon\'s: Exists 39, Nblocks 42, GetPage 8234, DbSize 37', () => {
    const size = (n: string): number => responseCases.find((c) => c.name === n)!.bytes.length
    expect([size('Exists v3'), size('Nblocks v3'), size('GetPage v3'), size('DbSize v3')]).toEqual([39, 42, 8234, 37])
  })

  for (const c of responseCases) {
    it(`${c.name}: encodes to hand-built bytes and decodes back`, () => {
      expect(encodeResponse(c.resp, c.version).equals(c.bytes)).toBe(true)
      const frame = encodeResponseFrame(c.resp, c.version)
      expect(frame.readUInt32BE(1)).toBe(4 + c.bytes.length)
      expect(decodeResponse(c.bytes, c.version)).toEqual(expectedDecoded(c))
    })

    it(`${c.name}: every truncation and any trailing byte is refused`, () => {
      expect(notRefused(c.bytes, (b) => decodeResponse(b, c.version), /^malformed pagestream response/)).toEqual([])
      expect(() => decodeResponse(Buffer.concat([c.bytes, hex('00')]), c.version)).toThrow(/unexpected bytes/)
    })
  }

  it('refuses unknown tags, Exists values other than 0/1, and SLRU counts above 32 before allocating', () => {
    expect(() => decodeResponse(hex('6a', '00'), 2)).toThrow('invalid tag 106')
    expect(() => decodeResponse(hex('02'), 2)).toThrow('invalid tag 2')
    expect(() => decodeResponse(hex('64', '02'), 2)).toThrow(/Exists value 2/)
    expect(() => decodeResponse(hex('69', '00000021'), 2)).toThrow(/33 blocks/)
    expect(() => decodeResponse(hex('69', 'ffffffff'), 2)).toThrow(/4294967295 blocks/)
  })

  it('an error message without its NUL, or with bytes after it, is refused', () => {
    expect(() => decodeResponse(hex('67', '6f6f7073'), 2)).toThrow(/not NUL-terminated/)
    expect(() => decodeResponse(hex('67', '6f6f7073', '00', '41'), 2)).toThrow(/unexpected bytes/)
  })

  it('the encoder refuses pages that are not 8192 bytes and segments that are not whole pages', () => {
    expect(() => encodeResponse({ type: 'getpage', req: getpage3 as never, page: Buffer.alloc(100) }, 2)).toThrow(/8192/)
    expect(() => encodeResponse({ type: 'slru', req: slru3 as never, segment: Buffer.alloc(8193) }, 2)).toThrow(/whole pages/)
    expect(() => encodeResponse({ type: 'slru', req: slru3 as never, segment: Buffer.alloc(33 * 8192) }, 2)).toThrow(/whole pages/)
  })

  it('NUL bytes inside an error message cannot cut it short on the wire', () => {
    const b = encodeResponse({ type: 'error', hdr: hdr2, message: 'a\0b' }, 2)
    expect(decodeResponse(b, 2)).toEqual({ type: 'error', echo: null, message: 'a b' })
  })
})

describe('a stream of CopyData frames split at every offset', () => {
  for (const version of [2, 3] as const) {
    it(`v${version}: every request survives any split into two chunks, and byte-by-byte feeding`, () => {
      const reqs = requestCases.filter((c) => c.version === version).map((c) => c.req)
      const stream = Buffer.concat(reqs.map((r) => encodeRequestFrame(r, version)))
      const decodeAll = (chunks: Buffer[]): PagestreamRequest[] => {
        const reader = new FrameReader({ messageBytesMax: 1024, peer: 'client' })
        const out: PagestreamRequest[] = []
        for (const ch of chunks) {
          reader.push(ch)
          for (let f = reader.next(); f !== null; f = reader.next()) {
            expect(f.type).toBe(0x64)
            out.push(decodeRequest(f.body, version))
          }
        }
        return out
      }
      for (let cut = 0; cut <= stream.length; cut++) {
        expect(decodeAll([stream.subarray(0, cut), stream.subarray(cut)])).toEqual(reqs)
      }
      expect(decodeAll([...stream].map((b) => Buffer.from([b])))).toEqual(reqs)
    })
  }

  it('responses (a GetPage among small ones) survive any split point', () => {
    const cases = responseCases.filter((c) => c.version === 3)
    const stream = Buffer.concat(cases.map((c) => encodeResponseFrame(c.resp, 3)))
    // Compared as digests: deep equality of 8 KiB buffers hundreds of times is slow.
    const digest = (x: unknown): string =>
      JSON.stringify(x, (_k, v: unknown) =>
        typeof v === 'bigint' ? v.toString() : v && typeof v === 'object' && (v as { type?: unknown }).type === 'Buffer' ? createHash('sha1').update(Buffer.from((v as { data: number[] }).data)).digest('hex') : v,
      )
    const want = digest(cases.map(expectedDecoded))
    for (let cut = 0; cut <= stream.length; cut += cut < 200 || cut > stream.length - 200 ? 1 : 97) {
      const reader = new FrameReader({ messageBytesMax: 1 << 20, peer: 'server' })
      const got: unknown[] = []
      for (const ch of [stream.subarray(0, cut), stream.subarray(cut)]) {
        reader.push(ch)
        for (let f = reader.next(); f !== null; f = reader.next()) got.push(decodeResponse(f.body, 3))
      }
      expect(digest(got), `cut at ${cut}`).toBe(want)
    }
  })
})
