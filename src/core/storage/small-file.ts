/**
 * Reading small files whole (metadata, tenant config): bounded so a damaged or hostile file cannot make
 * us allocate without limit. Missing files are a NotFoundError naming the path; other failures (permission
 * denied, I/O errors) an IO_ERROR naming it.
 */
import { readFileSync, statSync } from 'node:fs'
import { CorruptionError, isNotFoundFsError, NotFoundError, PageserverError } from '../lib/errors.js'
import { ioFailed } from './io-errors.js'

export function readSmallFile(path: string, maxBytes: number, what = 'file'): Buffer {
  try {
    const size = statSync(path).size
    if (size > maxBytes) {
      throw new CorruptionError('FILE_TOO_LARGE', `${what} ${path} has ${size} bytes, more than the ${maxBytes} allowed`, {
        hint: 'The file is damaged or not what it should be.',
        details: { path },
      })
    }
    return readFileSync(path)
  } catch (e) {
    if (isNotFoundFsError(e)) throw new NotFoundError('FILE_MISSING', `${what} ${path} does not exist`)
    if (e instanceof PageserverError) throw e
    throw ioFailed(`reading ${what}`, path, e)
  }
}
