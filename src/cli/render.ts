/**
 * Terminal rendering: tables, spinners and plain lines, each only where it helps.
 *
 * Spinners draw only on an interactive stderr with a known width and outside CI (ora loops forever on a
 * pty that reports 0 columns). Tables draw without colour codes (cli-table3 colours even when piped).
 * Both libraries are imported lazily so commands that draw nothing start faster.
 */

export function isInteractive(): boolean {
  return Boolean(process.stderr.isTTY) && (process.stderr.columns ?? 0) > 0 && !process.env.CI
}

export interface Progress {
  update(text: string): void
  succeed(text?: string): void
  fail(text?: string): void
  stop(): void
}

const SILENT: Progress = { update() {}, succeed() {}, fail() {}, stop() {} }

/** A spinner on stderr when interactive and not in JSON mode; otherwise silent. */
export async function startProgress(text: string, jsonMode: boolean): Promise<Progress> {
  if (jsonMode || !isInteractive()) return SILENT
  const { default: ora } = await import('ora')
  const spinner = ora({ text, stream: process.stderr, isEnabled: true, discardStdin: false }).start()
  return {
    update: (t) => {
      spinner.text = t
    },
    succeed: (t) => {
      spinner.succeed(t)
    },
    fail: (t) => {
      spinner.fail(t)
    },
    stop: () => {
      spinner.stop()
    },
  }
}

/** Runs `fn` with a spinner (startProgress) that is stopped when it ends, whether it returns or throws. */
export async function withProgress<T>(text: string, jsonMode: boolean, fn: (progress: Progress) => Promise<T>): Promise<T> {
  const progress = await startProgress(text, jsonMode)
  try {
    return await fn(progress)
  } finally {
    progress.stop()
  }
}

/** A plain table as a string (no colours), for stdout. */
export async function renderTable(head: string[], rows: Array<Array<string | number>>): Promise<string> {
  const { default: Table } = await import('cli-table3')
  const table = new Table({ head, style: { head: [], border: [] } })
  for (const r of rows) table.push(r.map((c) => String(c)))
  return table.toString()
}
