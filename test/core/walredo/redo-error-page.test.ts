import { describe, expect, it } from 'vitest'
import { CorruptionError, UnsupportedError } from '../../../src/core/lib/errors.js'
import { PAGE_BYTES } from '../../../src/core/walredo/protocol.js'
import {
  REDO_ERROR_MARK_ENV,
  decodeRedoErrorPage,
  encodeRedoErrorPage,
  isRedoErrorPage,
  newRedoErrorMark,
  redoErrorMarkFromEnv,
} from '../../../src/core/walredo/redo-error-page.js'

describe('redo error pages', () => {
  it('carry the typed error with its hint and details, behind the mark', () => {
    const mark = newRedoErrorMark()
    const err = new UnsupportedError('REDO_UNSUPPORTED_RECORD', 'no redo for Hash/INSERT at 0/1000', { hint: 'set wal_consistency_checking', details: { lsn: '0/1000' } })
    const page = encodeRedoErrorPage(mark, err)
    expect(page.length).toBe(PAGE_BYTES)
    expect(isRedoErrorPage(page, mark)).toBe(true)
    expect(isRedoErrorPage(page, newRedoErrorMark())).toBe(false)
    expect(decodeRedoErrorPage(page)).toEqual({ kind: 'unsupported', code: 'REDO_UNSUPPORTED_RECORD', message: 'no redo for Hash/INSERT at 0/1000', hint: 'set wal_consistency_checking', details: { lsn: '0/1000' } })
  })

  it('stay within one page whatever the message (details dropped, text cut)', () => {
    const mark = newRedoErrorMark()
    const huge = new CorruptionError('REDO_X', '\u0001é'.repeat(5000), { hint: '"'.repeat(5000), details: { blob: 'x'.repeat(20_000) } })
    const page = encodeRedoErrorPage(mark, huge)
    expect(page.length).toBe(PAGE_BYTES)
    const report = decodeRedoErrorPage(page)!
    expect(report).toMatchObject({ kind: 'corruption', code: 'REDO_X' })
    expect(report.details).toBeUndefined()
    expect(report.message.startsWith('\u0001é')).toBe(true)
  })

  it('a page with the mark but no well-formed report is refused (a malformed reply)', () => {
    const mark = newRedoErrorMark()
    const page = Buffer.alloc(PAGE_BYTES)
    mark.copy(page)
    expect(decodeRedoErrorPage(page)).toBeNull() // length 0
    page.writeUInt32BE(PAGE_BYTES, 16)
    expect(decodeRedoErrorPage(page)).toBeNull() // longer than the page
    page.writeUInt32BE(5, 16)
    page.write('{"a":', 20)
    expect(decodeRedoErrorPage(page)).toBeNull()
  })

  it('the worker takes the mark only as 32 hex digits', () => {
    const mark = newRedoErrorMark()
    expect(redoErrorMarkFromEnv({ [REDO_ERROR_MARK_ENV]: mark.toString('hex') })!.equals(mark)).toBe(true)
    expect(redoErrorMarkFromEnv({})).toBeNull()
    expect(redoErrorMarkFromEnv({ [REDO_ERROR_MARK_ENV]: 'xyz' })).toBeNull()
  })
})
