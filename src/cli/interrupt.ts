/**
 * SIGINT and SIGTERM as an AbortSignal, for commands that must stop cleanly rather than die where they are
 * (an export removes its half-written directory; a sync stops waiting). `dispose()` removes the handlers:
 * call it when the command ends, so that a later signal gets the default behaviour again.
 */
export function abortOnSignals(): { signal: AbortSignal; dispose: () => void } {
  const abort = new AbortController()
  const onSignal = (): void => abort.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  return {
    signal: abort.signal,
    dispose: () => {
      process.removeListener('SIGINT', onSignal)
      process.removeListener('SIGTERM', onSignal)
    },
  }
}
