/**
 * Helpers for the walredo tests: fake worker commands, the echo page computed independently of the fixture,
 * and process liveness checks that treat zombies as gone (an orphan may wait for a reaper that is slow).
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { lsn, type Lsn } from '../../../src/core/pg/lsn.js'
import type { BufferTag } from '../../../src/core/pg/reltag.js'
import type { WalRedoLogger } from '../../../src/core/walredo/manager.js'
import type { RedoRecordInput, RedoRequestInput } from '../../../src/core/walredo/protocol.js'

export function fixture(name: string): string {
  return fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
}

/** `node [--max-old-space-size=heapMb] fixtures/<name> ...args` */
export function fakeWorker(name: string, args: string[] = [], heapMb?: number): string[] {
  return [process.execPath, ...(heapMb === undefined ? [] : [`--max-old-space-size=${heapMb}`]), fixture(name), ...args]
}

/** A fake XLogRecord of `len` bytes (xl_tot_len right), contents derived from `seed`. */
export function record(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len)
  for (let i = 4; i < len; i++) b[i] = (i * 13 + seed * 101) & 0xff
  b.writeUInt32LE(len, 0)
  return b
}

export function tagOf(blkno: number): BufferTag {
  return { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0, blkno }
}

/** A request for block `blkno` with `n` records and, for odd blocks, a base page. */
export function request(blkno: number, n = 2): RedoRequestInput {
  const base = blkno % 2 === 1 ? Buffer.alloc(8192, blkno & 0xff) : null
  const records: RedoRecordInput[] = Array.from({ length: n }, (_, i) => ({
    endLsn: lsn(BigInt(blkno) * 0x1000n + BigInt(i + 1) * 8n),
    raw: record(24 + ((blkno + i) % 50), blkno * 10 + i),
  }))
  return { tag: tagOf(blkno), base, records }
}

/** What fixtures/fake-worker-lib.mjs echoPage() returns, computed here without sharing its code. */
export function expectedEcho(req: RedoRequestInput): Buffer {
  const page = req.base === null ? Buffer.alloc(8192) : Buffer.from(req.base)
  const last: Lsn | bigint = req.records.length > 0 ? req.records[req.records.length - 1]!.endLsn : 0n
  page.writeBigUInt64BE(last, 0)
  page.writeUInt32BE(req.records.length, 8)
  const t = req.tag
  page.writeUInt8(t.forkNum, 12)
  page.writeUInt32BE(t.spcNode, 13)
  page.writeUInt32BE(t.dbNode, 17)
  page.writeUInt32BE(t.relNode, 21)
  page.writeUInt32BE(t.blkno, 25)
  req.records.forEach((rec, i) => {
    for (let j = 0; j < rec.raw.length; j++) page[32 + ((i * 7 + j) % (8192 - 32))]! ^= rec.raw[j]!
  })
  return page
}

/** True while `pid` exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ..."; the state follows the last ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

/** Waits until every pid is gone; returns the ones still alive after `boundMs`. */
export async function waitGone(pids: number[], boundMs: number): Promise<number[]> {
  const until = Date.now() + boundMs
  for (;;) {
    const alive = pids.filter(isAlive)
    if (alive.length === 0 || Date.now() > until) return alive
    await new Promise((r) => setTimeout(r, 25))
  }
}

export interface LogEntry {
  level: string
  message: string
  fields: Record<string, unknown>
}

export function memoryLogger(): { logger: WalRedoLogger; entries: LogEntry[] } {
  const entries: LogEntry[] = []
  return { logger: (level, message, fields = {}) => entries.push({ level, message, fields }), entries }
}
