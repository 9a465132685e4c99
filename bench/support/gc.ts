/** A full garbage collection of this process's heap, for benchmarks that start every run from a collected heap. */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

// The flag must be set before a context asks for `gc`; a new context then has it.
setFlagsFromString('--expose-gc')
export const collectGarbage = runInNewContext('gc') as () => void
