/**
 * The page service's PostgreSQL v3 wire code: FrameReader (both directions), the server-side parsers and
 * encoders (pg-backend-messages.ts) and the client-side ones (pg-frontend-messages.ts), against bytes
 * written by hand from PostgreSQL 15's protocol documentation (protocol-message-formats.html).
 */
import { describe, expect, it } from 'vitest'
import { FrameReader, STARTUP_PACKET_BYTES_MAX } from '../../../src/core/protocol/pg-frames.js'
import {
  authenticationCleartextPassword,
  authenticationOk,
  commandComplete,
  copyBothResponse,
  copyData,
  copyDataHeader,
  copyDone,
  copyOutResponse,
  dataRow,
  errorResponse,
  parameterStatus,
  parseCString,
  parseParseMessage,
  parseStartupPacket,
  readyForQuery,
  rowDescriptionText,
} from '../../../src/core/protocol/pg-backend-messages.js'
import {
  cancelRequest,
  gssEncRequest,
  parseAuthCode,
  parseCStrings,
  parseDataRow,
  parseErrorFields,
  passwordMessage,
  query,
  sslRequest,
  startupMessage,
  terminateMessage,
} from '../../../src/core/protocol/pg-frontend-messages.js'

const hex = (...parts: string[]): Buffer => Buffer.from(parts.join('').replace(/\s+/g, ''), 'hex')
const ascii = (s: string): string => Buffer.from(s, 'latin1').toString('hex')

describe('FrameReader', () => {
  const QUERY = hex('51 0000000a', ascii('set x'), '00') // 'Q', length 10, "set x\0"
  const TERMINATE = hex('58 00000004')

  it('cuts typed messages at every split point and byte by byte', () => {
    const stream = Buffer.concat([QUERY, TERMINATE, QUERY])
    for (let cut = 0; cut <= stream.length; cut++) {
      const r = new FrameReader({ messageBytesMax: 100, peer: 'client' })
      const got: string[] = []
      for (const ch of [stream.subarray(0, cut), stream.subarray(cut)]) {
        r.push(ch)
        for (let f = r.next(); f !== null; f = r.next()) got.push(`${String.fromCharCode(f.type)}:${f.body.toString('hex')}`)
      }
      expect(got).toEqual([`Q:${ascii('set x')}00`, 'X:', `Q:${ascii('set x')}00`])
      expect(r.bufferedBytes).toBe(0)
    }
  })

  it('returns views into a chunk when a message lies inside it (no copy)', () => {
    const r = new FrameReader({ messageBytesMax: 100, peer: 'client' })
    r.push(QUERY)
    const f = r.next()!
    expect(f.body.buffer).toBe(QUERY.buffer)
  })

  it('refuses a length below 4 and a length above the limit after only the 5 header bytes', () => {
    const r1 = new FrameReader({ messageBytesMax: 100, peer: 'client' })
    r1.push(hex('51 00000003'))
    expect(() => r1.next()).toThrow(/impossible length 3/)
    const r2 = new FrameReader({ messageBytesMax: 1024 * 1024, peer: 'client' })
    r2.push(hex('64 80000000')) // 2^31: nothing more is sent, nothing is allocated
    expect(() => r2.next()).toThrow(/2147483644-byte message of type 'd'; at most 1048576/)
    const r3 = new FrameReader({ messageBytesMax: 100, peer: 'client' })
    r3.push(hex('64 00000069')) // 101-byte body
    expect(() => r3.next()).toThrow(/101-byte message/)
    const r4 = new FrameReader({ messageBytesMax: 100, peer: 'client' })
    r4.push(hex('64 00000068')) // exactly 100: accepted, waits for the body
    expect(r4.next()).toBeNull()
  })

  it('reads untyped startup packets while expectStartup, with PostgreSQL\'s 10,000-byte limit', () => {
    const pkt = sslRequest()
    for (let cut = 0; cut <= pkt.length; cut++) {
      const r = new FrameReader({ messageBytesMax: 100, peer: 'client' })
      r.expectStartup = true
      r.push(pkt.subarray(0, cut))
      const first = r.next()
      r.push(pkt.subarray(cut))
      const f = first ?? r.next()
      expect(f).not.toBeNull()
      expect(f!.type).toBe(0)
      expect(f!.body.equals(hex('04d2162f'))).toBe(true)
    }
    expect(STARTUP_PACKET_BYTES_MAX).toBe(10_000)
    for (const len of [0, 7, 10_001, 0x7fffffff]) {
      const r = new FrameReader({ messageBytesMax: 100, peer: 'client' })
      r.expectStartup = true
      r.push(hex(len.toString(16).padStart(8, '0')))
      expect(() => r.next()).toThrow(/invalid startup packet length/)
    }
  })
})

describe('startup packets', () => {
  it('SSLRequest, GSSENCRequest and CancelRequest by their codes', () => {
    expect(sslRequest().equals(hex('00000008 04d2162f'))).toBe(true)
    expect(gssEncRequest().equals(hex('00000008 04d21630'))).toBe(true)
    expect(cancelRequest(42, -1).equals(hex('00000010 04d2162e 0000002a ffffffff'))).toBe(true)
    expect(parseStartupPacket(hex('04d2162f'))).toEqual({ kind: 'ssl' })
    expect(parseStartupPacket(hex('04d21630'))).toEqual({ kind: 'gssenc' })
    expect(parseStartupPacket(hex('04d2162e 0000002a ffffffff'))).toEqual({ kind: 'cancel', processId: 42, secretKey: -1 })
  })

  it('StartupMessage parameters', () => {
    const body = hex('00030000', ascii('user'), '00', ascii('alice'), '00', ascii('options'), '00', ascii('-c neon.compute_mode=primary'), '00', '00')
    const p = parseStartupPacket(body)
    expect(p.kind).toBe('startup')
    expect(p.kind === 'startup' && Object.fromEntries(p.params)).toEqual({ user: 'alice', options: '-c neon.compute_mode=primary' })
    const built = startupMessage({ user: 'alice', options: '-c neon.compute_mode=primary' })
    expect(built.readUInt32BE(0)).toBe(built.length)
    expect(built.subarray(4).equals(body)).toBe(true)
  })

  it('malformed packets are refused with a message, never a crash', () => {
    expect(() => parseStartupPacket(hex('04d2162e 0000002a'))).toThrow(/CancelRequest message is malformed/)
    expect(() => parseStartupPacket(hex('04d21631'))).toThrow(/unrecognized request code 5681/)
    expect(() => parseStartupPacket(hex('00020000 00'))).toThrow(/unsupported frontend protocol 2.0/)
    expect(() => parseStartupPacket(hex('00030000', ascii('user')))).toThrow(/missing null terminator/)
    expect(() => parseStartupPacket(hex('00030000', ascii('user'), '00', '00'))).toThrow(/has no value/)
    expect(() => parseStartupPacket(hex('0003'))).toThrow(/truncated/)
    const many = Buffer.concat([hex('00030000'), ...Array.from({ length: 65 }, (_, i) => hex(ascii(`k${i}`), '00', ascii('v'), '00')), hex('00')])
    expect(() => parseStartupPacket(many)).toThrow(/more than 64 parameters/)
  })
})

describe('frontend messages', () => {
  it('Query, PasswordMessage and Terminate as documented', () => {
    expect(query('set x').equals(hex('51 0000000a', ascii('set x'), '00'))).toBe(true)
    expect(passwordMessage('tok').equals(hex('70 00000008', ascii('tok'), '00'))).toBe(true)
    expect(terminateMessage().equals(hex('58 00000004'))).toBe(true)
    expect(parseCString(hex(ascii('set x'), '00'), 'Query')).toBe('set x')
    expect(() => parseCString(hex(ascii('set x')), 'Query')).toThrow(/not NUL-terminated/)
    expect(() => parseCString(hex(ascii('a'), '00', ascii('b'), '00'), 'Query')).toThrow(/bytes after its string/)
    expect(parseParseMessage(hex('00', ascii('basebackup a b'), '00', '0000'))).toBe('basebackup a b')
  })
})

describe('backend messages', () => {
  it('authentication, ReadyForQuery, CommandComplete and COPY framing byte for byte', () => {
    expect(authenticationOk().equals(hex('52 00000008 00000000'))).toBe(true)
    expect(authenticationCleartextPassword().equals(hex('52 00000008 00000003'))).toBe(true)
    expect(parseAuthCode(hex('00000003'))).toBe(3)
    expect(readyForQuery().equals(hex('5a 00000005 49'))).toBe(true)
    expect(commandComplete('SELECT 1').equals(hex('43 0000000d', ascii('SELECT 1'), '00'))).toBe(true)
    expect(parameterStatus('server_version', '14.1').equals(hex('53 00000018', ascii('server_version'), '00', ascii('14.1'), '00'))).toBe(true)
    expect(copyBothResponse().equals(hex('57 00000007 00 0000'))).toBe(true)
    expect(copyOutResponse().equals(hex('48 00000007 00 0000'))).toBe(true)
    expect(copyDone().equals(hex('63 00000004'))).toBe(true)
    expect(copyData(hex('0102')).equals(hex('64 00000006 0102'))).toBe(true)
    expect(copyDataHeader(8192).equals(hex('64 00002004'))).toBe(true)
  })

  it('ErrorResponse carries S, V, C, M (and D, H) and parses back', () => {
    const b = errorResponse({ severity: 'ERROR', code: 'XX000', message: 'not found' })
    expect(b.equals(hex('45 00000025 53', ascii('ERROR'), '00 56', ascii('ERROR'), '00 43', ascii('XX000'), '00 4d', ascii('not found'), '00 00'))).toBe(true)
    const d = errorResponse({ severity: 'FATAL', code: '57P01', message: 'shutdown', detail: 'why', hint: 'what' })
    expect(parseErrorFields(d.subarray(5))).toEqual({ severity: 'FATAL', code: '57P01', message: 'shutdown', detail: 'why', hint: 'what' })
  })

  it('RowDescription and DataRow of text values (NULL included)', () => {
    const t = rowDescriptionText(['valid_until'])
    expect(t[0]).toBe(0x54)
    expect(t.readUInt16BE(5)).toBe(1)
    expect(t.readUInt32BE(1)).toBe(t.length - 1)
    const d = dataRow(['1700000000000', null, ''])
    expect(d.equals(hex('44 0000001f 0003 0000000d', ascii('1700000000000'), 'ffffffff 00000000'))).toBe(true)
    expect(parseDataRow(d.subarray(5))).toEqual(['1700000000000', null, ''])
    expect(parseCStrings(hex(ascii('a'), '00', ascii('b'), '00'), 'x')).toEqual(['a', 'b'])
  })
})
