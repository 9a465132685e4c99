/**
 * The base of every `pageserver` command.
 *
 * Gives every command `--json`, `-D/--workdir` (default `.neon`, or `PAGESERVER_WORKDIR`) and repeatable
 * `-c key=value` config overrides; maps every error to a stable code, a one-line message, a hint and an
 * exit code (src/cli/errors.ts). With `--json`, the value returned by `run()` is printed as JSON on stdout
 * (LSNs as "X/X" strings) and errors as `{"error": {"code", "message", "hint"}}`.
 *
 * A command is: parse flags, call one core/app function, render, return a typed result.
 */
import { Command, Flags, type Interfaces } from '@oclif/core'
import { toUserFacing } from './errors.js'
import { PageserverError } from '../core/lib/errors.js'
import { jsonReplacer } from './stdout-sink.js'
import type { AppContext } from '../core/app/context.js'
import type { ManagementClient } from './server-client.js'
import type { PageserverConfig } from '../core/config/index.js'

export type CommandFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof BaseCommand)['baseFlags'] & T['flags']>
export type CommandArgs<T extends typeof Command> = Interfaces.InferredArgs<T['args']>

/** `--workdir`, with `-D` unless the command gives -D another meaning (`timeline export`: the data directory). */
export function workdirFlag(withShortD: boolean) {
  return Flags.string({
    ...(withShortD ? { char: 'D' as const } : {}),
    summary: 'Working directory of the page server (holds pageserver.toml and tenants/).',
    env: 'PAGESERVER_WORKDIR',
    default: '.neon',
    helpGroup: 'GLOBAL',
  })
}

export abstract class BaseCommand<T extends typeof Command> extends Command {
  static override enableJsonFlag = true

  static override baseFlags = {
    workdir: workdirFlag(true),
    config: Flags.string({
      char: 'c',
      summary: 'Override a config key for this run, as a TOML fragment: -c checkpoint_distance=268435456.',
      description:
        'Repeatable. Each value is a TOML document whose top-level keys replace the same keys of pageserver.toml ' +
        '(no deep merge): -c "remote_storage={local_path=\'/some/path/\'}".',
      multiple: true,
      // One value per -c: `-c a=1 FILE` must leave FILE to the command's arguments.
      multipleNonGreedy: true,
      helpGroup: 'GLOBAL',
    }),
  }

  protected flags!: CommandFlags<T>
  protected args!: CommandArgs<T>

  public override async init(): Promise<void> {
    await super.init()
    const { args, flags } = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (super.ctor as typeof BaseCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      args: this.ctor.args,
      strict: this.ctor.strict,
    })
    this.flags = flags as CommandFlags<T>
    this.args = args as CommandArgs<T>
    // Every command refuses a bad -c (an unknown key, a wrong type), also those that read no config (wal dump,
    // layer dump): a typo must not pass silently. Each key alone here; what depends on other keys, which
    // pageserver.toml may set (CONFIG_MISSING_KEY), is checked where the config is loaded.
    const overrides = (this.flags as { config?: string[] }).config ?? []
    if (overrides.length > 0) {
      const { resolveConfig } = await import('../core/config/load.js')
      try {
        resolveConfig({ workdir: '/', configPath: 'pageserver.toml', fileText: null, overrides, env: process.env })
      } catch (e) {
        if (!(e instanceof PageserverError) || e.code !== 'CONFIG_MISSING_KEY') throw e
      }
    }
  }

  /** The effective config: `<workdir>/pageserver.toml`, then each `-c` in order; credentials from the environment. */
  protected async loadConfig(): Promise<PageserverConfig> {
    // Imported on demand: commands that need no config do not pay for loading the TOML parser.
    const { loadConfig } = await import('../core/config/index.js')
    return loadConfig({ workdir: this.flags.workdir, overrides: this.flags.config ?? [], env: process.env })
  }

  /**
   * A client for the `pageserver serve` running on this workdir, if any (mutating commands go through it).
   * The token for an API with NeonJWT auth comes from NEON_AUTH_TOKEN.
   */
  protected async serverClient(): Promise<ManagementClient | null> {
    const { runningServer, ManagementClient } = await import('./server-client.js')
    const config = await this.loadConfig()
    const s = runningServer(config.workdir)
    if (s === null) return null
    // Checked above like every -c, but not applied: the server keeps the config it started with. Said on stderr
    // (stdout stays the result, --json included), so that nobody takes them for applied.
    const overrides = this.flags.config ?? []
    if (overrides.length > 0) {
      process.stderr.write(
        `pageserver: -c ${overrides.map((o) => JSON.stringify(o)).join(', ')} not applied: this command goes through the page server running on ` +
          `${config.workdir} (pid ${s.pid}), which keeps the configuration it started with\n`,
      )
    }
    return new ManagementClient(s, process.env.NEON_AUTH_TOKEN)
  }

  /** The context core/app use cases take: the effective config and the process environment. */
  protected async appContext(): Promise<AppContext> {
    return { config: await this.loadConfig(), env: process.env }
  }

  /**
   * Commands whose --json output is JSON Lines (one object per line: records, then an end line) set this, so
   * that an error caught here (a bad flag value, say) is one line too: a `while read` consumer reads it whole.
   */
  static jsonLines = false

  /** Plain JSON (no colour codes): scripts read it. Indented, or one line for JSON Lines commands. */
  public override logJson(json: unknown): void {
    const oneLine = (this.constructor as typeof BaseCommand).jsonLines
    process.stdout.write(JSON.stringify(json, jsonReplacer, oneLine ? undefined : 2) + '\n')
  }

  protected override async catch(err: Error & { exitCode?: number }): Promise<unknown> {
    const oclifExit = (err as { oclif?: { exit?: number } }).oclif?.exit
    if ((err as { code?: string }).code === 'EEXIT' && oclifExit !== undefined) throw err
    const e = toUserFacing(err)
    if (this.jsonEnabled()) {
      this.logJson({ error: { code: e.code, message: e.message, hint: e.hint ?? null } })
    } else {
      process.stderr.write(`Error: ${e.message}\n`)
      if (e.hint) process.stderr.write(`Hint: ${e.hint}\n`)
      if (e.stack && process.env.PAGESERVER_DEBUG) process.stderr.write(`${e.stack}\n`)
    }
    return this.exit(e.exitCode)
  }
}
