/**
 * Listen addresses as text, and listening on them. Parser and formatter sit side by side so that every
 * address we print or store (the workdir lock file, `serve`'s startup line, log lines) reads back:
 *
 *   formatHostPort('127.0.0.1', 64000) = "127.0.0.1:64000"     splitHostPort("127.0.0.1:64000")
 *   formatHostPort('::1', 9898)        = "[::1]:9898"          splitHostPort("[::1]:9898")
 *
 * Invariant: `splitHostPort(formatHostPort(h, p))` is `{host: h, port: p}` for every host Node reports
 * (names, IPv4, IPv6 with or without a zone). An IPv6 literal needs the brackets: "::1:9898" cannot be
 * split (is 9898 the port or the last group?), and `http://::1:9898/` is not a URL.
 *
 * `listenOn` gives the page service and the HTTP API the same typed error when the port is taken
 * (EADDRINUSE), not ours to take (EACCES) or the host is not local (EADDRNOTAVAIL): UnavailableError
 * naming the setting, exit 6.
 */
import type { Server } from 'node:net'
import { UnavailableError } from './errors.js'

/** A listen address split into its parts; `host` has no brackets (`::1`, not `[::1]`). */
export interface HostPort {
  readonly host: string
  readonly port: number
}

const HOST_PORT_RE = /^(?:\[([0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?)\]|([A-Za-z0-9_.-]+)):(\d{1,5})$/

/** Splits "127.0.0.1:64000", "localhost:9898" or "[::1]:6400"; null when the text is not host:port. */
export function splitHostPort(text: string): HostPort | null {
  const m = HOST_PORT_RE.exec(text.trim())
  if (!m) return null
  const port = Number(m[3])
  if (port > 65535) return null
  return { host: m[1] ?? m[2]!, port }
}

/** "host:port", with the host in brackets when it is an IPv6 literal (it has a colon). */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

/** What `listenOn` names in its error: the setting that chose the address, and the error code. */
export interface ListenTarget {
  /** "listen_pg_addr", "listen_http_addr" */
  readonly setting: string
  /** Stable error code: "PAGE_SERVICE_LISTEN_FAILED", "HTTP_LISTEN_FAILED". */
  readonly code: string
}

/**
 * Listens on host:port (port 0 picks a free one). A failure to bind is UnavailableError (exit 6) with a
 * hint naming `target.setting`; the server is left not listening. Later server errors are the caller's
 * (attach an 'error' listener once this resolves: an unhandled one would end the process).
 */
export async function listenOn(server: Server, host: string, port: number, target: ListenTarget): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(
        new UnavailableError(target.code, `cannot listen on ${formatHostPort(host, port)}: ${err.message}`, {
          hint: `Choose another ${target.setting}, or stop the process that holds the port.`,
          cause: err,
        }),
      )
    }
    server.once('error', onError)
    server.listen(port, host, () => {
      server.off('error', onError)
      resolve()
    })
  })
}
