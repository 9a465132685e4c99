// Local file primitives: the durable whole-file write leaves no temp file and replaces atomically;
// removeTempFiles cleans up; positional reads are exact or a CorruptionError naming the file; the
// streaming writer writes large files in order under backpressure, patches, renames and aborts, and
// queues callers' buffers without copying them (several writes at once, each reported once); the
// ephemeral file serves reads from its buffer and its file across the boundary.
import { readdirSync } from 'node:fs'
import { mkdir, readFile, readdir, rename, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { AssertionFailure, CorruptionError, NotFoundError } from '../../../src/core/lib/errors.js'
import { listFiles, removeFilesWhere } from '../../../src/core/storage/directory.js'
import { fsyncDir, removeTempFiles, writeFileDurably } from '../../../src/core/storage/durable-file.js'
import { OPEN_FILES_MAX_DEFAULT, PositionalFile, openFileDescriptors, setOpenFilesMax } from '../../../src/core/storage/positional-file.js'
import { StreamingFileWriter } from '../../../src/core/storage/streaming-file-writer.js'
import { prng, randInt, withTempDir } from '../layer/helpers.js'

function randomBytes(seed: number, n: number): Buffer {
  const rng = prng(seed)
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = Math.floor(rng() * 256)
  return b
}

describe('writeFileDurably / removeTempFiles / fsyncDir', () => {
  it('writes, replaces, leaves no temp file (with and without fsync)', async () => {
    await withTempDir('ps-storage-', async (dir) => {
      const p = join(dir, 'metadata')
      await writeFileDurably(p, Buffer.from('one'))
      expect(await readFile(p, 'utf8')).toBe('one')
      await writeFileDurably(p, Buffer.from('two, longer'), { noSync: true })
      expect(await readFile(p, 'utf8')).toBe('two, longer')
      await writeFileDurably(p, Buffer.alloc(0))
      expect((await stat(p)).size).toBe(0)
      expect(await readdir(dir)).toEqual(['metadata'])
      await fsyncDir(dir)
      await expect(writeFileDurably(join(dir, 'no', 'such', 'dir'), Buffer.from('x'))).rejects.toBeInstanceOf(NotFoundError)
    })
  })

  it('removeTempFiles removes only *___temp files; listFiles lists regular files with sizes', async () => {
    await withTempDir('ps-storage-', async (dir) => {
      await writeFile(join(dir, 'a___temp'), 'x')
      await writeFile(join(dir, 'layer.1234abcd___temp'), 'xy')
      await writeFile(join(dir, 'keep'), 'xyz')
      await writeFile(join(dir, '___temp_not_suffix'), '')
      expect((await removeTempFiles(dir)).sort()).toEqual(['a___temp', 'layer.1234abcd___temp'])
      expect(await listFiles(dir)).toEqual([
        { name: '___temp_not_suffix', sizeBytes: 0 },
        { name: 'keep', sizeBytes: 3 },
      ])
      expect(await removeFilesWhere(dir, (n) => n === 'keep')).toEqual(['keep'])
      await expect(listFiles(join(dir, 'missing'))).rejects.toBeInstanceOf(NotFoundError)
    })
  })

  it('listFiles counts a symbolic link to a regular file, not one to a directory or nowhere', async () => {
    await withTempDir('ps-storage-links-', async (dir) => {
      await mkdir(join(dir, 'elsewhere'))
      await writeFile(join(dir, 'elsewhere', 'moved-layer'), 'abcd')
      await symlink(join(dir, 'elsewhere', 'moved-layer'), join(dir, 'linked'))
      await symlink(join(dir, 'elsewhere'), join(dir, 'link-to-dir'))
      await symlink(join(dir, 'nowhere'), join(dir, 'dangling'))
      expect(await listFiles(dir)).toEqual([{ name: 'linked', sizeBytes: 4 }])
    })
  })
})

describe('PositionalFile', () => {
  it('reads exact ranges and reports a short file as corruption naming it', async () => {
    await withTempDir('ps-storage-', async (dir) => {
      const p = join(dir, 'f')
      const data = randomBytes(1, 10000)
      await writeFile(p, data)
      const f = PositionalFile.open(p)
      expect(f.sizeBytes).toBe(10000)
      expect(f.read(0, 10000).equals(data)).toBe(true)
      const buf = Buffer.alloc(100)
      f.readInto(buf, 10, 50, 9950)
      expect(buf.subarray(10, 60).equals(data.subarray(9950))).toBe(true)
      expect(() => f.read(9990, 11)).toThrow(CorruptionError)
      expect(() => f.read(9990, 11)).toThrow(p)
      expect(() => f.readInto(buf, 90, 20, 0)).toThrow(AssertionFailure)
      f.close()
      f.close()
      expect(() => f.read(0, 1)).toThrow(/closed/)
      expect(() => PositionalFile.open(join(dir, 'missing'))).toThrow(NotFoundError)
    })
  })

  it('holds at most openFilesMax descriptors: a file whose descriptor was taken back reopens on its next read, and must be the same file', async () => {
    await withTempDir('ps-storage-fds-', async (dir) => {
      const before = openFileDescriptors()
      const fdsOfProcess = (): number => readdirSync('/proc/self/fd').length
      const procBefore = fdsOfProcess()
      setOpenFilesMax(before + 3)
      try {
        const files: PositionalFile[] = []
        const contents: Buffer[] = []
        for (let i = 0; i < 10; i++) {
          const data = randomBytes(i + 100, 5000)
          await writeFile(join(dir, `f${i}`), data)
          contents.push(data)
          files.push(PositionalFile.open(join(dir, `f${i}`)))
        }
        expect(openFileDescriptors()).toBe(before + 3)
        expect(fdsOfProcess() - procBefore).toBeLessThanOrEqual(3)
        // Every file still reads right, in any order, within the bound.
        for (const i of [0, 9, 3, 3, 7, 1, 0, 5]) {
          expect(files[i]!.read(100, 200).equals(contents[i]!.subarray(100, 300)), `file ${i}`).toBe(true)
          expect(openFileDescriptors()).toBeLessThanOrEqual(before + 3)
        }
        // Replaced at its path while its descriptor was given back: refused, naming it.
        const victim = files.findIndex((f) => openFileDescriptors() > 0 && (f as unknown as { fd: number }).fd < 0)
        expect(victim).toBeGreaterThanOrEqual(0)
        // (written beside it first, then renamed over it: a new inode, as a restore from a copy would give)
        await writeFile(join(dir, 'replacement'), contents[victim]!)
        await rename(join(dir, 'replacement'), join(dir, `f${victim}`))
        expect(() => files[victim]!.read(0, 10)).toThrow(expect.objectContaining({ code: 'FILE_REPLACED' }))
        for (const f of files) f.close()
        expect(openFileDescriptors()).toBe(before)
      } finally {
        setOpenFilesMax(OPEN_FILES_MAX_DEFAULT)
      }
    })
  })
})

describe('StreamingFileWriter', () => {
  it('writes a large file in order under backpressure, patches the start, renames on finish', async () => {
    await withTempDir('ps-storage-', async (dir) => {
      const final = join(dir, 'big')
      const w = await StreamingFileWriter.create(final, { chunkBytes: 4096, pendingChunksMax: 2 })
      const rng = prng(2)
      const expected: Buffer[] = [Buffer.alloc(16)]
      w.append(Buffer.alloc(16))
      let falses = 0
      for (let i = 0; i < 2000; i++) {
        const piece = randomBytes(i, randInt(rng, 0, 9000))
        expected.push(piece)
        if (!w.append(piece)) {
          falses++
          await w.drain()
        }
      }
      expect(falses).toBeGreaterThan(0)
      const total = expected.reduce((s, b) => s + b.length, 0)
      expect(w.position).toBe(total)
      expect(await readdir(dir)).toEqual(['big___temp'])
      await w.writeAt(0, Buffer.from('HEADER'))
      const r = await w.finish()
      expect(r).toEqual({ path: final, sizeBytes: total })
      const all = Buffer.concat(expected)
      Buffer.from('HEADER').copy(all, 0)
      expect((await readFile(final)).equals(all)).toBe(true)
      expect(await readdir(dir)).toEqual(['big'])
      await expect(w.finish()).rejects.toThrow(AssertionFailure)
    })
  })

  it('appends views without copying them, interleaved with copies, and reports each view once written', async () => {
    await withTempDir('ps-storage-', async (dir) => {
      const w = await StreamingFileWriter.create(join(dir, 'v'), { chunkBytes: 4096, pendingChunksMax: 1, noSync: true })
      const expected: Buffer[] = []
      const written: number[] = []
      for (let i = 0; i < 300; i++) {
        const piece = randomBytes(100 + i, 1 + ((i * 7919) % 20000))
        expected.push(piece)
        if (i % 3 === 0) {
          if (!w.append(piece)) await w.drain()
        } else {
          w.appendView(piece, () => written.push(i))
        }
      }
      // Views do not count against the backlog of copies: an append is still accepted.
      expect(() => w.append(Buffer.from('tail'))).not.toThrow()
      expected.push(Buffer.from('tail'))
      await w.finish()
      expect(written.sort((a, b) => a - b)).toEqual([...Array(300).keys()].filter((i) => i % 3 !== 0))
      expect((await readFile(join(dir, 'v'))).equals(Buffer.concat(expected))).toBe(true)

      const a = await StreamingFileWriter.create(join(dir, 'a'), { noSync: true })
      let calls = 0
      for (let i = 0; i < 20; i++) a.appendView(Buffer.alloc(1 << 20, i), () => calls++)
      await a.abort()
      expect(calls).toBeLessThan(20)
      expect(await readdir(dir)).toEqual(['v'])
    })
  })

  it('asserts when backpressure is ignored; abort removes the temp file; finish can rename elsewhere', async () => {
    await withTempDir('ps-storage-', async (dir) => {
      const w = await StreamingFileWriter.create(join(dir, 'x'), { chunkBytes: 1024, pendingChunksMax: 1, noSync: true })
      expect(w.append(Buffer.alloc(4096))).toBe(false)
      expect(() => w.append(Buffer.alloc(1))).toThrow(/ignored backpressure/)
      await w.abort()
      await w.abort()
      expect(await readdir(dir)).toEqual([])

      const v = await StreamingFileWriter.create(join(dir, 'y'), { noSync: true })
      v.append(Buffer.from('abc'))
      await v.finish(join(dir, 'z'))
      expect(await readFile(join(dir, 'z'), 'utf8')).toBe('abc')
      expect(await readdir(dir)).toEqual(['z'])
    })
  })
})
