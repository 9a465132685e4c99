/**
 * Entry of the flush worker thread (flush-worker.ts): answers each FlushRequest with the FinishedLayer of
 * `writeL0`, or with slabs allocated and touched here (prefault), or with the error. Jobs run
 * concurrently. The only state kept between messages is the L0 streams (l0-stream.ts): per stream, a
 * chain of its steps — open the file at its first slab, write each slab, then its flush job or its abort —
 * so the steps of one stream run in the order they were sent. A stream whose step fails is aborted (its
 * file removed) and reported; its flush then writes every slab itself.
 */
import { parentPort } from 'node:worker_threads'
import { allocTouchedSlabs, errorToWire, type FlushReply, type FlushRequest, type StreamReply, type StreamSlabMessage } from './flush-worker.js'
import { writeL0 } from './l0-flush.js'
import { L0Stream } from './l0-stream.js'

const port = parentPort
if (port === null) throw new Error('flush-worker-main runs only as a worker thread')

/** Per stream id: the stream once its steps so far have run (null: failed or not opened). */
const streams = new Map<number, Promise<L0Stream | null>>()

function failed(streamId: number): null {
  port!.postMessage({ id: 0, streamFailed: { streamId } } satisfies StreamReply)
  return null
}

function onStreamSlab(m: StreamSlabMessage): void {
  let chain = streams.get(m.streamId)
  if (chain === undefined) {
    // The first slab names the file; a later one without a stream means this thread replaced one that died.
    chain = m.target !== undefined ? L0Stream.open(m.target) : Promise.resolve(null)
  }
  const next = chain.then(
    async (st) => {
      if (st === null) return failed(m.streamId)
      try {
        const written = (): void => {
          const slab = st.streamed(m.index, m.firstEntry, m.endEntry)
          port!.postMessage({ id: 0, streamWritten: { streamId: m.streamId, index: m.index, slab } } satisfies StreamReply, [slab.crcs.buffer as ArrayBuffer])
        }
        st.addSlab(m.index, Buffer.from(m.slab, 0, m.used), m.records, m.firstEntry, m.endEntry, written)
        return st
      } catch {
        await st.abort().catch(() => {})
        return failed(m.streamId)
      }
    },
    () => failed(m.streamId),
  )
  streams.set(m.streamId, next)
}

port.on('message', (m: FlushRequest) => {
  if ('streamSlab' in m) {
    onStreamSlab(m.streamSlab)
    return
  }
  if ('streamAbort' in m) {
    const chain = streams.get(m.streamAbort.streamId)
    streams.delete(m.streamAbort.streamId)
    const streamId = m.streamAbort.streamId
    // Answered once the file is gone (or the stream never made one), so the other side stops holding its path.
    void (chain ?? Promise.resolve(null))
      .then((st) => st?.abort())
      .catch(() => {})
      .then(() => port.postMessage({ id: 0, streamAborted: { streamId } } satisfies StreamReply))
    return
  }
  if ('alloc' in m) {
    try {
      port.postMessage({ id: m.id, slabs: allocTouchedSlabs(m.alloc.count, m.alloc.slabBytes) } satisfies FlushReply)
    } catch (e) {
      port.postMessage({ id: m.id, error: errorToWire(e) } satisfies FlushReply)
    }
    return
  }
  const sid = m.job.layer.streamId
  const chain = sid !== null ? streams.get(sid) : undefined
  if (sid !== null) streams.delete(sid)
  ;(chain ?? Promise.resolve(null))
    .then((st) => writeL0(m.job, st))
    .then(
      (layer) => port.postMessage({ id: m.id, layer } satisfies FlushReply),
      (e: unknown) => port.postMessage({ id: m.id, error: errorToWire(e) } satisfies FlushReply),
    )
})
