/**
 * Reads of a socket into one reusable buffer, handed to a callback, instead of Node's default: a fresh
 * 64 KiB allocation per read, shrunk to the bytes read, pushed through the Readable stream ('data' event,
 * `maybeReadMore` on the next tick). For a request/response protocol with small requests (a 47-byte
 * GetPage), that default costs about a quarter of the server's CPU per request on loopback; reading into a
 * kept buffer is Node's `onread` socket option.
 *
 * `net.connect` takes `onread` directly; an accepted socket does not (net.Server has no such option), so
 * `adoptWithReadBuffer` moves the accepted socket's handle, before it has read anything (the server must be
 * created with `pauseOnConnect: true`), into a new Socket made with `onread`, the way Node hands sockets
 * between processes. Where the handle cannot be taken, the socket is used as it is, with a 'data' listener.
 *
 * Invariant: `onBytes` gets a copy of the bytes read (Node's pooled allocation for small reads), never a
 * view of the shared buffer, so a consumer may keep what it was given. The buffer may be shared by every
 * socket of a process: each read's callback runs to completion before the next read.
 */
import { Socket, type NetConnectOpts } from 'node:net'

/** Size of a shared read buffer: what one read takes at most (Node's default read size). */
const READ_BUFFER_BYTES = 64 * 1024

/** A shared read buffer (one per process is enough; see the invariant above). */
export function newReadBuffer(): Buffer {
  return Buffer.allocUnsafe(READ_BUFFER_BYTES)
}

/** The `onread` option of `net.connect` / `new Socket`: each read copied out to `onBytes`. */
function onreadOption(buffer: Buffer, onBytes: (bytes: Buffer) => void): NonNullable<NetConnectOpts['onread']> {
  return {
    buffer,
    callback: (n: number, buf: Uint8Array): boolean => {
      const bytes = Buffer.allocUnsafe(n)
      bytes.set(buf.subarray(0, n))
      onBytes(bytes)
      return true // reading stops through pause(), not here
    },
  }
}

interface HandleOwner {
  _handle: unknown
}

/**
 * Returns a socket that reads `accepted`'s connection into `buffer` and calls `onBytes` with each read
 * (see the module comment); `accepted` must not have read yet (`pauseOnConnect`). The returned socket
 * starts reading when resumed (call `resume()`; `pause()` stops reading from the kernel, so TCP
 * back-pressure reaches the peer).
 */
export function adoptWithReadBuffer(accepted: Socket, buffer: Buffer, onBytes: (bytes: Buffer) => void): Socket {
  const owner = accepted as unknown as HandleOwner
  const handle = owner._handle
  if (handle === null || handle === undefined || accepted.destroyed) {
    accepted.on('data', onBytes)
    return accepted
  }
  // The accepted Socket lets go of the handle (its close then touches no descriptor) and the new one owns it.
  owner._handle = null
  accepted.destroy()
  const socket = new Socket({ handle, onread: onreadOption(buffer, onBytes), readable: true, writable: true } as ConstructorParameters<typeof Socket>[0])
  socket.pause()
  return socket
}
