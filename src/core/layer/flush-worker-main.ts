/**
 * Entry of the flush worker thread (flush-worker.ts): answers each FlushRequest with the FinishedLayer of
 * `writeL0`, or with slabs allocated and touched here (prefault), or with the error. Jobs run
 * concurrently; nothing here keeps state between them.
 */
import { parentPort } from 'node:worker_threads'
import { allocTouchedSlabs, errorToWire, type FlushReply, type FlushRequest } from './flush-worker.js'
import { writeL0 } from './l0-flush.js'

const port = parentPort
if (port === null) throw new Error('flush-worker-main runs only as a worker thread')
port.on('message', (m: FlushRequest) => {
  if ('alloc' in m) {
    try {
      port.postMessage({ id: m.id, slabs: allocTouchedSlabs(m.alloc.count, m.alloc.slabBytes) } satisfies FlushReply)
    } catch (e) {
      port.postMessage({ id: m.id, error: errorToWire(e) } satisfies FlushReply)
    }
    return
  }
  writeL0(m.job).then(
    (layer) => port.postMessage({ id: m.id, layer } satisfies FlushReply),
    (e: unknown) => port.postMessage({ id: m.id, error: errorToWire(e) } satisfies FlushReply),
  )
})
