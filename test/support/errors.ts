/** Test helpers for the errors the code under test throws. */
import { expect } from 'vitest'
import { PageserverError } from '../../src/core/lib/errors.js'

/** The PageserverError thrown by fn (fails the test when nothing or something else is thrown). */
export function errorOf(fn: () => unknown): PageserverError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(PageserverError)
    return err as PageserverError
  }
  throw new Error('expected an error')
}
