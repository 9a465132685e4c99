/**
 * WalCrcWalker: finds the records in a stream of WAL pages and checks each one's CRC-32C, without decoding
 * them. It runs on the CRC worker thread right after that thread has read a chunk of a segment file, while
 * the bytes are still in its core's cache; the decoding thread then decodes the chunk and takes the CRC
 * verdicts with it (wal-worker-source.ts), instead of checksumming every byte again from memory.
 *
 * It follows the same layout rules as WalStreamDecoder (page headers at every 8 KiB, a record header that
 * may be split across pages, 8-byte alignment, the rest of a segment skipped after XLOG_SWITCH, a tail
 * continued from before the start skipped, an overwritten continuation abandoned) but validates only what
 * it needs to keep its place. It is not an authority on structure: where its view and the bytes disagree
 * (a bad magic, a continuation length that does not match, a length out of range) it stops ("lost") and
 * says nothing more; the decoder reports the fault, and checks by itself the CRC of any record it has no
 * verdict for. A verdict names the record by its start LSN: the decoder and the walker read xl_tot_len
 * from the same bytes at the same LSN, so they delimit the same record.
 *
 * Self-contained on purpose (no imports, constants inline): the worker thread runs this class's source
 * text (wal-crc-worker.ts builds its program from `WalCrcWalker.toString()`), and tests run it here.
 *
 * Positions are JS numbers (exact below 2^53 bytes of WAL), as in the decoder.
 */

/** crc(buf[start, end)) continued from `previous`: CRC-32C, the lib/crc32c.ts convention. */
export type CrcRangeFn = (buf: Uint8Array, start: number, end: number, previous: number) => number

/** A record whose stored CRC differs from the computed one (the walker stops there). */
export interface WalkBad {
  readonly lsn: number
  readonly stored: number
  readonly computed: number
}

export interface WalkResult {
  /** Start LSNs of the records completed in this chunk whose CRC matched, in order. */
  readonly ok: number[]
  /** The first record completed in this chunk whose CRC did not match, if any. */
  readonly bad: WalkBad | null
}

export class WalCrcWalker {
  /** LSN of the next byte expected. */
  pos: number
  /** 0 walking, 1 end of valid WAL (zero length), 2 lost or stopped at a bad CRC: no more verdicts. */
  state = 0
  private skipTo: number
  private headerDoneAt = -1
  private pageHeaderSize = 0
  private syncing: boolean
  private contSkip = 0
  private inRecord = false
  private recStart = 0
  private totLen = 0
  private got = 0
  private crc = 0
  /** Every piece of the record under way was in a chunk walked with `check`. */
  private recChecked = false
  private readonly hdr = new Uint8Array(24)

  constructor(
    startLsn: number,
    private readonly segSize: number,
    private readonly recordMax: number,
    private readonly crcRange: CrcRangeFn,
  ) {
    this.pos = startLsn
    this.skipTo = startLsn
    // A start inside a page is a record boundary; at a page boundary, a continued tail is skipped.
    this.syncing = startLsn % 8192 === 0
  }

  /**
   * Walks `b`, whose first byte is at LSN `lsn` (contiguous with the previous chunk; chunks hold whole pages
   * unless they end the input). Appends verdicts to `ok`; returns the first bad CRC, or null. With `check`
   * false it only keeps its place: no CRC is computed for the records completed in `b`, nor for a record
   * with a piece in it, and they get no verdict (the decoding thread checks them).
   */
  walk(b: Uint8Array, lsn: number, ok: number[], check = true): WalkBad | null {
    if (this.state !== 0) return null
    if (lsn !== this.pos) {
      this.state = 2
      return null
    }
    let i = 0
    const n = b.length
    while (i < n) {
      const pos = this.pos
      const pageOff = pos % 8192
      if (pos < this.skipTo) {
        const k = Math.min(this.skipTo - pos, 8192 - pageOff, n - i)
        i += k
        this.pos += k
        continue
      }
      if (pageOff === 0 && this.headerDoneAt !== pos) {
        if (n - i < 24 || !this.pageHeader(b, i)) {
          this.state = 2
          return null
        }
        i += this.pageHeaderSize
        this.pos += this.pageHeaderSize
        continue
      }
      if (this.contSkip > 0) {
        const k = Math.min(this.contSkip, 8192 - pageOff, n - i)
        i += k
        this.pos += k
        this.contSkip -= k
        if (this.contSkip === 0) {
          this.skipTo = Math.ceil(this.pos / 8) * 8
          this.syncing = false
        }
        continue
      }
      if (!this.inRecord) {
        if (n - i < 4) {
          this.state = 2
          return null
        }
        const totLen = (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0
        if (totLen === 0) {
          this.state = 1
          return null
        }
        if (totLen < 24 || totLen > this.recordMax || (pageOff !== 0 && pageOff < this.pageHeaderSize)) {
          this.state = 2
          return null
        }
        this.syncing = false
        // Fast path: the whole record is on this page and in this chunk: check it where it lies.
        if (totLen <= 8192 - pageOff && totLen <= n - i) {
          if (check) {
            const computed = this.crcRange(b, i, i + 20, this.crcRange(b, i + 24, i + totLen, 0))
            const stored = (b[i + 20]! | (b[i + 21]! << 8) | (b[i + 22]! << 16) | (b[i + 23]! << 24)) >>> 0
            if (computed !== stored) {
              this.state = 2
              return { lsn: pos, stored, computed }
            }
            ok.push(pos)
          }
          this.pos += totLen
          this.skipTo = b[i + 17] === 0 && (b[i + 16]! & 0xf0) === 0x40 ? this.switchEnd() : Math.ceil(this.pos / 8) * 8
          i += totLen
          continue
        }
        this.inRecord = true
        this.recStart = pos
        this.totLen = totLen
        this.got = 0
        this.crc = 0
        this.recChecked = true
      }
      if (!check) this.recChecked = false
      // Bytes of the current record on this page and in this chunk.
      let k = Math.min(8192 - pageOff, this.totLen - this.got, n - i)
      if (this.got < 24) {
        const h = Math.min(k, 24 - this.got)
        for (let j = 0; j < h; j++) this.hdr[this.got + j] = b[i + j]!
        this.got += h
        i += h
        this.pos += h
        k -= h
      }
      if (k > 0) {
        if (this.recChecked) this.crc = this.crcRange(b, i, i + k, this.crc)
        this.got += k
        i += k
        this.pos += k
      }
      if (this.got === this.totLen) {
        const h = this.hdr
        this.inRecord = false
        if (this.recChecked) {
          const computed = this.crcRange(h, 0, 20, this.crc)
          const stored = (h[20]! | (h[21]! << 8) | (h[22]! << 16) | (h[23]! << 24)) >>> 0
          if (computed !== stored) {
            this.state = 2
            return { lsn: this.recStart, stored, computed }
          }
          ok.push(this.recStart)
        }
        this.skipTo = h[17] === 0 && (h[16]! & 0xf0) === 0x40 ? this.switchEnd() : Math.ceil(this.pos / 8) * 8
      }
    }
    return null
  }

  /** After XLOG_SWITCH (resource manager 0, info 0x40) the rest of the segment is not read. */
  private switchEnd(): number {
    return (Math.floor((this.pos - 1) / this.segSize) + 1) * this.segSize
  }

  /** Takes the page header at b[i] (whole in the chunk); false when the walk cannot go on past it. */
  private pageHeader(b: Uint8Array, i: number): boolean {
    const magic = b[i]! | (b[i + 1]! << 8)
    const info = b[i + 2]! | (b[i + 3]! << 8)
    if (magic !== 0xd110) return false
    const size = info & 0x0002 ? 40 : 24
    if (b.length - i < size) return false
    const remLen = (b[i + 16]! | (b[i + 17]! << 8) | (b[i + 18]! << 16) | (b[i + 19]! << 24)) >>> 0
    const cont = (info & 0x0001) !== 0
    const overwrite = (info & 0x0008) !== 0
    this.headerDoneAt = this.pos
    this.pageHeaderSize = size
    if (this.inRecord) {
      if (overwrite) {
        this.inRecord = false // the record under way was abandoned and overwritten: read on here
        return true
      }
      return cont && remLen !== 0 && remLen === this.totLen - this.got
    }
    if (this.contSkip > 0) {
      if (overwrite) {
        this.contSkip = 0
        return true
      }
      return cont && remLen === this.contSkip
    }
    if (cont && !overwrite) {
      if (!this.syncing || remLen === 0) return false
      this.contSkip = remLen
    }
    return true
  }
}
