/**
 * encodeGetPageResponseHeadFrom: the head built from a request's payload, followed by the page, is byte for
 * byte the frame encodeResponseFrame builds from the decoded request, in both protocol versions (the server
 * writes the page separately); anything but a GetPage payload of the version's size is refused.
 */
import { describe, expect, it } from 'vitest'
import { decodeRequest, encodeGetPageResponseHeadFrom, encodeRequest, encodeResponseFrame, type GetPageRequest } from '../../../src/core/protocol/pagestream.js'
import { lsn, MAX_LSN } from '../../../src/core/pg/lsn.js'

describe('encodeGetPageResponseHeadFrom', () => {
  it('plus the page equals the whole response frame, v2 and v3', () => {
    const page = Buffer.alloc(8192)
    for (let i = 0; i < page.length; i++) page[i] = (i * 31) & 0xff
    const reqs: GetPageRequest[] = [
      { type: 'getpage', hdr: { reqid: 7n, request_lsn: lsn(0x16b3748), not_modified_since: lsn(0x16b0000) }, rel: { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 2 }, blkno: 4_000_000_000 },
      { type: 'getpage', hdr: { reqid: 0xffff_ffff_ffffn, request_lsn: MAX_LSN, not_modified_since: lsn(0) }, rel: { spcNode: 1664, dbNode: 0, relNode: 1262, forkNum: 0 }, blkno: 0 },
    ]
    for (const req of reqs) {
      for (const v of [2, 3] as const) {
        const payload = encodeRequest(req, v)
        const whole = encodeResponseFrame({ type: 'getpage', req: decodeRequest(payload, v) as GetPageRequest, page }, v)
        const head = encodeGetPageResponseHeadFrom(payload, v)
        expect(head.length).toBe(whole.length - 8192)
        expect(Buffer.concat([head, page]).equals(whole)).toBe(true)
      }
    }
  })

  it('refuses a payload that is not a GetPage request of the version', () => {
    const req: GetPageRequest = { type: 'getpage', hdr: { reqid: 1n, request_lsn: lsn(0x100), not_modified_since: lsn(0x100) }, rel: { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0 }, blkno: 1 }
    expect(() => encodeGetPageResponseHeadFrom(encodeRequest(req, 2), 3)).toThrow(/not a GetPage request payload/)
    expect(() => encodeGetPageResponseHeadFrom(encodeRequest({ type: 'nblocks', hdr: req.hdr, rel: req.rel }, 3), 3)).toThrow(/not a GetPage request payload/)
  })
})
