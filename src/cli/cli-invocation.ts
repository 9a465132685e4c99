/**
 * How a user runs this CLI in a shell, for commands printed in hints and instructions: `pageserver` when
 * that name resolves on PATH to this installation (an `npm link` / `npm install -g` symlink to this
 * bin/run.js), else the absolute path of bin/run.js — a newcomer who ran `./bin/run.js local start` has no
 * `pageserver` on PATH, and a hint they cannot paste is no help.
 */
import { accessSync, constants, realpathSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { shellWord } from './pg-commands.js'

/** This checkout's entry point, absolute (dist/cli/cli-invocation.js is two levels below the root). */
export const RUN_JS = join(fileURLToPath(new URL('../..', import.meta.url)), 'bin', 'run.js')

export function cliInvocation(): string {
  const self = realpathSync(RUN_JS)
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue
    const candidate = join(dir, 'pageserver')
    try {
      accessSync(candidate, constants.X_OK)
    } catch {
      continue
    }
    try {
      return realpathSync(candidate) === self ? 'pageserver' : shellWord(RUN_JS)
    } catch {
      return shellWord(RUN_JS)
    }
  }
  return shellWord(RUN_JS)
}
