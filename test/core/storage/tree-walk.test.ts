// walkFiles and readFileChunks never follow a symbolic link: the walk refuses one (DATA_DIR_SYMLINK, naming
// it), and a link opened as a file fails instead of reading its target (a link planted in a data directory
// being imported must not make the importer, possibly root, read another file).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { readFileChunks, walkFiles } from '../../../src/core/storage/tree-walk.js'

const root = mkdtempSync(join(tmpdir(), 'ps-tree-walk-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

describe('walkFiles', () => {
  it('visits files in sorted order and refuses a symbolic link, naming it', async () => {
    const dir = join(root, 'tree')
    mkdirSync(join(dir, 'base', '5'), { recursive: true })
    writeFileSync(join(dir, 'PG_VERSION'), '15\n')
    writeFileSync(join(dir, 'base', '5', '1259'), Buffer.alloc(8192, 1))
    writeFileSync(join(root, 'secret'), 'not yours')
    expect((await collect(walkFiles(dir))).map((f) => f.relPath)).toEqual(['PG_VERSION', 'base/5/1259'])
    symlinkSync(join(root, 'secret'), join(dir, 'base', '5', '2619'))
    await expect(collect(walkFiles(dir))).rejects.toMatchObject({ code: 'DATA_DIR_SYMLINK', message: expect.stringContaining(join(dir, 'base', '5', '2619')) })
  })

  it('readFileChunks does not follow a link to another file', async () => {
    const link = join(root, 'link')
    symlinkSync(join(root, 'secret'), link)
    await expect(collect(readFileChunks(link))).rejects.toMatchObject({ code: 'ELOOP' })
    expect(Buffer.concat(await collect(readFileChunks(join(root, 'secret')))).toString()).toBe('not yours')
  })
})
