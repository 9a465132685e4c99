// duplicateTopLevelKey: finds a key given twice in a JSON text's top-level object (JSON.parse silently keeps
// the last), and only there: nested objects, arrays, string values that look like keys and escaped quotes
// do not count.
import { describe, expect, it } from 'vitest'
import { duplicateTopLevelKey } from '../../../src/core/lib/json-duplicate-keys.js'

describe('duplicateTopLevelKey', () => {
  it('finds a repeated top-level key, and nothing else', () => {
    expect(duplicateTopLevelKey('{"scope":"tenant","scope":"pageserverapi"}')).toBe('scope')
    expect(duplicateTopLevelKey('{ "a" : 1 , "b":{"a":2}, "a" :3}')).toBe('a')
    expect(duplicateTopLevelKey('{"\\u0061":1,"a":2}')).toBe('a') // the same key, escaped
    expect(duplicateTopLevelKey('{"a":{"x":1,"x":2},"b":[{"a":1},{"a":2}]}')).toBeNull()
    expect(duplicateTopLevelKey('{"a":"\\"b\\":","b":"a"}')).toBeNull()
    expect(duplicateTopLevelKey('{"a":"b","c":"a"}')).toBeNull()
    expect(duplicateTopLevelKey('{}')).toBeNull()
  })
})
