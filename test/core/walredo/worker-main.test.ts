/**
 * Our own worker process (worker-main.ts) behind the manager, started from source with tsx's loader, which is
 * what defaultWorkerCommand() gives when it runs as a .ts module; and from dist/ when a build exists.
 */
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'
import { PageserverError } from '../../../src/core/lib/errors.js'
import { WalRedoManager } from '../../../src/core/walredo/manager.js'
import { lsn } from '../../../src/core/pg/lsn.js'
import { RM } from '../../../src/core/pg/rmgr.js'
import { redoBlock } from '../../../src/core/redo/engine.js'
import { encodePing, encodeRedoRequest } from '../../../src/core/walredo/protocol.js'
import { buildRecord, le } from '../redo/heap/record-builder.js'
import { parseRedoErrorLine } from '../../../src/core/walredo/redo-error-line.js'
import { REDO_ERROR_MARK_ENV, decodeRedoErrorPage, isRedoErrorPage, newRedoErrorMark } from '../../../src/core/walredo/redo-error-page.js'
import { defaultWorkerCommand } from '../../../src/core/walredo/worker-command.js'
import { request, waitGone } from './support.js'

/** Heap INSERT+INIT of one tuple at offset 1 (xl_heap_header + a null-bitmap byte + the body), with a wrong xl_crc. */
function badCrcInsert(tag: { spcNode: number; dbNode: number; relNode: number; forkNum: number; blkno: number }): Buffer {
  const tuple = Buffer.concat([le([2, 2], [0x0802, 2], [24, 1]), Buffer.from([0]), Buffer.from('hello, redo')])
  const raw = buildRecord({
    rmid: RM.HEAP,
    info: 0x80,
    xid: 1000,
    blocks: [{ id: 0, rel: tag, fork: 0, blkno: tag.blkno, data: tuple, willInit: true }],
    main: le([1, 2], [0, 1]),
  })
  raw.writeUInt32LE((raw.readUInt32LE(20) ^ 0xffff) >>> 0, 20) // the record is otherwise fine
  return raw
}

const OPTIONS = { poolSize: 1, requestTimeoutMs: 20_000, idleTimeoutMs: 60_000, maxQueued: 10, maxInFlightPerWorker: 2 }

/** Runs the worker with `input` on stdin (then EOF); resolves with its exit code, stdout and stderr. */
function runWorkerProcess(args: string[], input: Buffer, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  const [file, ...rest] = defaultWorkerCommand({ hintBitsLogged: false })
  return new Promise((resolve, reject) => {
    const child = spawn(file!, [...rest, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    let err = ''
    child.stdout.on('data', (c: Buffer) => out.push(c))
    child.stderr.on('data', (c: Buffer) => (err += c.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }))
    child.stdin.on('error', () => {})
    child.stdin.end(input)
  })
}

describe('worker-main (our redo worker process)', () => {
  it('the default command runs from source under tsx, with the heap limit', () => {
    const cmd = defaultWorkerCommand({ hintBitsLogged: true, heapMaxMb: 256 })
    expect(cmd[0]).toBe(process.execPath)
    expect(cmd).toContain('--max-old-space-size=256')
    expect(cmd[cmd.length - 2]).toBe(fileURLToPath(new URL('../../../src/core/walredo/worker-main.ts', import.meta.url)))
    expect(cmd[cmd.length - 1]).toBe('--hint-bits-logged')
    expect(() => defaultWorkerCommand({ hintBitsLogged: false, heapMaxMb: 1 })).toThrow(/too small/)
  })

  it('answers pings, exits 0 on EOF, and reports a protocol error on stderr with exit 1', async () => {
    const ok = await runWorkerProcess([], Buffer.concat([encodePing(), encodePing()]))
    expect(ok.code).toBe(0)
    expect(ok.stdout.length).toBe(2 * 8192)
    expect(ok.stdout.every((b) => b === 0)).toBe(true)

    const bad = await runWorkerProcess([], Buffer.concat([encodePing(), Buffer.from('Zjunk')]))
    expect(bad.code).toBe(1)
    expect(bad.stdout.length).toBe(8192)
    const line = bad.stderr.split('\n').find((l) => l.startsWith('pageserver-redo-error: '))!
    expect(parseRedoErrorLine(line)).toMatchObject({ kind: 'corruption', code: 'WALREDO_UNKNOWN_MESSAGE' })

    const arg = await runWorkerProcess(['--bogus'], Buffer.alloc(0))
    expect(arg.code).toBe(1)
    expect(arg.stderr).toContain('WALREDO_WORKER_BAD_ARG')
  })

  it('checks every record CRC by default and skips the check with --skip-record-crc', async () => {
    const tag = { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0, blkno: 0 }
    const raw = badCrcInsert(tag)
    const input = encodeRedoRequest({ tag, base: null, records: [{ endLsn: lsn(0x1000100n), raw }] })

    const checked = await runWorkerProcess([], input)
    expect(checked.code).toBe(1)
    expect(checked.stdout.length).toBe(0)
    expect(parseRedoErrorLine(checked.stderr.split('\n').find((l) => l.startsWith('pageserver-redo-error: '))!)).toMatchObject({ code: 'REDO_BAD_RECORD_CRC' })

    const skipped = await runWorkerProcess(['--skip-record-crc'], input)
    expect(skipped.code).toBe(0)
    const expected = redoBlock(tag, null, [{ endLsn: lsn(0x1000100n), raw }], { hintBitsLogged: false, checkRecordCrc: false })
    expect(skipped.stdout.equals(expected)).toBe(true)
    expect(defaultWorkerCommand({ hintBitsLogged: true, checkRecordCrc: false }).slice(-2)).toEqual(['--hint-bits-logged', '--skip-record-crc'])
    expect(defaultWorkerCommand({ hintBitsLogged: false })).not.toContain('--skip-record-crc')
  })

  it('with a mark in its environment, answers a page it cannot redo with an error page and serves the next request', async () => {
    const tag = { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0, blkno: 0 }
    const bad = Buffer.from(badCrcInsert(tag))
    const base = Buffer.alloc(8192, 7)
    const input = Buffer.concat([
      encodeRedoRequest({ tag, base: null, records: [{ endLsn: lsn(0x1000100n), raw: bad }] }),
      encodeRedoRequest({ tag, base, records: [] }),
    ])
    const mark = newRedoErrorMark()
    const run = await runWorkerProcess([], input, { [REDO_ERROR_MARK_ENV]: mark.toString('hex') })
    expect(run.code).toBe(0)
    expect(run.stdout.length).toBe(2 * 8192)
    const first = run.stdout.subarray(0, 8192)
    expect(isRedoErrorPage(first, mark)).toBe(true)
    expect(decodeRedoErrorPage(first)).toMatchObject({ kind: 'corruption', code: 'REDO_BAD_RECORD_CRC' })
    expect(run.stdout.subarray(8192).equals(base)).toBe(true)
    expect(run.stderr).not.toContain('pageserver-redo-error')
  })

  it('behind the manager: a redo error fails only its own request; the worker and the requests pipelined behind it go on', async () => {
    const tag = { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0, blkno: 0 }
    const m = new WalRedoManager({ ...OPTIONS, maxInFlightPerWorker: 8, command: defaultWorkerCommand({ hintBitsLogged: false }) })
    try {
      await m.ping()
      const pid = m.stats().pids[0]
      const bad = { tag, base: null, records: [{ endLsn: lsn(0x1000100n), raw: badCrcInsert(tag) }] }
      const good = (n: number) => ({ tag, base: Buffer.alloc(8192, n), records: [] })
      const results = await Promise.allSettled([m.redo(good(1)), m.redo(bad), m.redo(good(2)), m.redo(good(3)), m.redo(bad), m.redo(good(4))])
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled'])
      for (const [i, n] of [[0, 1], [2, 2], [3, 3], [5, 4]] as const) {
        expect((results[i] as PromiseFulfilledResult<Buffer>).value.equals(Buffer.alloc(8192, n))).toBe(true)
      }
      const e = (results[1] as PromiseRejectedResult).reason as PageserverError
      expect(e).toBeInstanceOf(PageserverError)
      expect(e.code).toBe('REDO_BAD_RECORD_CRC')
      expect(e.details?.pid).toBe(pid)
      expect(m.stats()).toMatchObject({ spawned: 1, retried: 0, failed: 2, succeeded: 4, pids: [pid], failures: { redo_error: 2, crash: 0 } })
    } finally {
      const pids = m.stats().pids
      await m.close()
      expect(await waitGone(pids, 2000)).toEqual([])
    }
  })

  it('behind the manager: pings, and an engine error comes back typed and is not retried', async () => {
    const m = new WalRedoManager({ ...OPTIONS, command: defaultWorkerCommand({ hintBitsLogged: false }) })
    try {
      await m.ping()
      // Four zero-filled 24-byte "records": no engine can redo them, whichever way it refuses.
      let err: unknown
      try {
        await m.redo(request(2, 4))
      } catch (e) {
        err = e
      }
      expect(err).toBeInstanceOf(PageserverError)
      const e = err as PageserverError
      expect(['WALREDO_WORKER_CRASHED', 'WALREDO_TIMEOUT', 'WALREDO_MALFORMED_REPLY', 'WALREDO_WORKER_LOST']).not.toContain(e.code)
      expect(e.details?.pid).toBeTypeOf('number')
      expect(m.stats()).toMatchObject({ spawned: 1, retried: 0, failed: 1 })
    } finally {
      const pids = m.stats().pids
      await m.close()
      expect(await waitGone(pids, 2000)).toEqual([])
    }
  })

  it('behind the manager: every redo error names the page, and a record error its LSN', async () => {
    const tag = { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0, blkno: 3 }
    const garbage = Buffer.alloc(60, 0xab)
    garbage.writeUInt32LE(60, 0)
    const base = Buffer.alloc(8192)
    // Records are CRC-checked (no --skip-record-crc), as `redo replay` runs them.
    const m = new WalRedoManager({ ...OPTIONS, command: defaultWorkerCommand({ hintBitsLogged: false }) })
    try {
      const errorOf = async (req: Parameters<WalRedoManager['redo']>[0]): Promise<PageserverError> => {
        try {
          await m.redo(req)
        } catch (e) {
          expect(e).toBeInstanceOf(PageserverError)
          return e as PageserverError
        }
        throw new Error('expected a redo error')
      }
      const crc = await errorOf({ tag, base, records: [{ endLsn: lsn(0x1000100n), raw: badCrcInsert(tag) }] })
      expect(crc.code).toBe('REDO_BAD_RECORD_CRC')
      expect(crc.message).toContain('0/1000100')
      expect(crc.message).toContain('1663/5/16384 blk 3')
      expect(crc.details).toMatchObject({ page: '1663/5/16384 blk 3', endLsn: '0/1000100' })
      const bad = await errorOf({ tag, base, records: [{ endLsn: lsn(0x1000200n), raw: garbage }] })
      expect(bad.message).toContain('0/1000200')
      expect(bad.message).toContain('1663/5/16384 blk 3')
      const none = await errorOf({ tag, base: null, records: [] })
      expect(none.code).toBe('REDO_NO_PAGE')
      expect(none.message).toContain('1663/5/16384 blk 3')
      expect(m.stats()).toMatchObject({ spawned: 1, retried: 0, failed: 3 })
    } finally {
      const pids = m.stats().pids
      await m.close()
      expect(await waitGone(pids, 2000)).toEqual([])
    }
  })

  it('refuses a message out of order from its header, without waiting for a body that never comes (stdin stays open)', async () => {
    const header = (type: string, len: number): Buffer => {
      const b = Buffer.alloc(5)
      b[0] = type.charCodeAt(0)
      b.writeUInt32BE(len, 1)
      return b
    }
    const tag = { spcNode: 1663, dbNode: 5, relNode: 16384, forkNum: 0, blkno: 0 }
    const record = { endLsn: lsn(0x1000100n), raw: badCrcInsert(tag) }
    const begun = encodeRedoRequest({ tag, base: null, records: [record] }).subarray(0, 22 + 13 + record.raw.length)
    for (const [input, message] of [
      [header('A', 12 + 100_000), 'ApplyRecord outside a request'],
      [header('P', 21 + 8192), 'PushPage outside a request'],
      [Buffer.concat([begun, header('P', 21 + 8192)]), 'PushPage after the request began'],
    ] as const) {
      const [file, ...rest] = defaultWorkerCommand({ hintBitsLogged: false })
      const child = spawn(file!, rest, { env: {}, stdio: ['pipe', 'pipe', 'pipe'] })
      let err = ''
      child.stderr.on('data', (c: Buffer) => (err += c.toString()))
      child.stdin.on('error', () => {})
      const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
      child.stdin.write(Buffer.concat([encodePing(), input]))
      // Before: the worker waited for the rest of the message, until the parent gave up on it.
      const code = await Promise.race([exited, new Promise<'waiting'>((resolve) => setTimeout(() => resolve('waiting'), 10_000))])
      if (code === 'waiting') child.kill('SIGKILL')
      expect(code).toBe(1)
      expect(parseRedoErrorLine(err.split('\n').find((l) => l.startsWith('pageserver-redo-error: '))!)).toMatchObject({ code: 'WALREDO_OUT_OF_ORDER', message })
      child.stdin.destroy()
    }
  }, 60_000)

  const distCommand = new URL('../../../dist/core/walredo/worker-command.js', import.meta.url)
  it.skipIf(!existsSync(distCommand))('the default command of the built CLI runs dist/core/walredo/worker-main.js', async () => {
    const mod = (await import(pathToFileURL(fileURLToPath(distCommand)).href)) as { defaultWorkerCommand: typeof defaultWorkerCommand }
    const cmd = mod.defaultWorkerCommand({ hintBitsLogged: false })
    expect(cmd[cmd.length - 1]).toMatch(/dist\/core\/walredo\/worker-main\.js$/)
    expect(cmd).not.toContain('--import')
    const m = new WalRedoManager({ ...OPTIONS, command: cmd })
    try {
      await m.ping()
    } finally {
      await m.close()
    }
  })
})
