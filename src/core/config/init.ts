/**
 * `pageserver init`: create a workdir with `tenants/` and a commented `pageserver.toml`.
 *
 * The `-c` overrides given to init are validated exactly as at any other command, then written into the
 * file as chosen (uncommented) values; the written file is loaded back and must give the same config
 * (assert in pairs). The file appears atomically and durably: written to `pageserver.toml.___temp`, fsynced,
 * then linked into place (fails if a file exists, so two concurrent inits cannot both win) or, with
 * `force`, renamed over the old one; then the directory is fsynced. Replacing a config takes the workdir lock
 * for that moment: a running `serve` (or a mutating command) holds it, and would go on with settings its
 * workdir no longer says.
 */
import { link, mkdir, open, rename, rm } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { ConflictError, PageserverError, UsageError, assert, messageOf } from '../lib/errors.js'
import { CONFIG_FILE_NAME, resolveConfig, type LoadConfigOptions } from './load.js'
import { redactedConfigJson } from './show.js'
import { renderConfigTemplate } from './template.js'
import { diskFull, isDiskFullError, readOnlyFileSystemError } from '../storage/io-errors.js'
import { shellWord } from '../lib/shell-word.js'
import { WorkdirLock } from '../storage/workdir-lock.js'

export const TENANTS_DIR_NAME = 'tenants'
const TEMP_SUFFIX = '.___temp'

export interface InitWorkdirOptions extends LoadConfigOptions {
  /** Replace an existing pageserver.toml. */
  readonly force?: boolean
}

export interface InitWorkdirResult {
  readonly workdir: string
  readonly configPath: string
  readonly tenantsDir: string
  /** True when an existing pageserver.toml was replaced (only with force). */
  readonly overwritten: boolean
  /** Keys written uncommented because they were given with -c. */
  readonly chosenKeys: readonly string[]
}

export async function initWorkdir(opts: InitWorkdirOptions): Promise<InitWorkdirResult> {
  const workdir = resolve(opts.workdir)
  const configPath = join(workdir, CONFIG_FILE_NAME)
  const env = opts.env ?? {}
  const wanted = resolveConfig({ workdir, configPath, fileText: null, overrides: opts.overrides ?? [], env })
  const text = renderConfigTemplate(wanted.overrideTable)
  const back = resolveConfig({ workdir, configPath, fileText: text, overrides: [], env })
  assert(
    JSON.stringify(redactedConfigJson(back.config)) === JSON.stringify(redactedConfigJson(wanted.config)),
    'init: the written config does not load back to the chosen config',
  )

  const existed = await fileExists(configPath)
  if (existed && !opts.force) throw exists(configPath, workdir)
  // WORKDIR_LOCKED naming the holder while one runs here.
  const lock = existed ? WorkdirLock.acquire(workdir, 'init --force') : null
  try {
    return await writeConfig(workdir, configPath, text, opts.force === true, Object.keys(wanted.overrideTable))
  } finally {
    lock?.release()
  }
}

async function writeConfig(workdir: string, configPath: string, text: string, force: boolean, chosenKeys: string[]): Promise<InitWorkdirResult> {

  const tenantsDir = join(workdir, TENANTS_DIR_NAME)
  try {
    await mkdir(tenantsDir, { recursive: true })
  } catch (err) {
    throw unusable(tenantsDir, err)
  }
  const tmpPath = configPath + TEMP_SUFFIX
  let overwritten = false
  try {
    await writeDurably(tmpPath, text)
    if (force) {
      overwritten = await fileExists(configPath)
      await rename(tmpPath, configPath)
    } else {
      try {
        await link(tmpPath, configPath)
      } catch (err) {
        if ((err as { code?: string }).code === 'EEXIST') throw exists(configPath, workdir)
        throw err
      }
    }
    await fsyncDir(workdir)
  } catch (err) {
    if (err instanceof PageserverError) throw err
    throw unusable(configPath, err)
  } finally {
    await rm(tmpPath, { force: true })
  }
  return { workdir, configPath, tenantsDir, overwritten, chosenKeys }
}

function unusable(path: string, err: unknown): PageserverError {
  const readOnly = readOnlyFileSystemError(path, err, 'WORKDIR_UNUSABLE')
  if (readOnly !== null) return readOnly
  // Not the place's fault: the file system has no room (free some, and run init again).
  if (isDiskFullError(err)) return diskFull('creating', path, err)
  return new UsageError('WORKDIR_UNUSABLE', `cannot create ${path}: ${messageOf(err)}`, {
    hint: 'Choose a workdir (-D/--workdir) in a writable location that is not a file.',
    cause: err,
  })
}

function exists(configPath: string, workdir: string): ConflictError {
  // The command as it must be run again: with this workdir unless it is the default one here.
  const dFlag = workdir === resolve('.neon') ? '' : ` -D ${shellWord(workdir)}`
  return new ConflictError('CONFIG_EXISTS', `${configPath} already exists`, {
    hint: `Keep it, edit it, or run \`pageserver init${dFlag} --force\` to replace it with a fresh default config.`,
    details: { path: configPath },
  })
}

async function fileExists(path: string): Promise<boolean> {
  try {
    const h = await open(path, 'r')
    await h.close()
    return true
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code === 'ENOENT' || code === 'ENOTDIR') return false
    throw unusable(path, err)
  }
}

async function writeDurably(path: string, text: string): Promise<void> {
  const h = await open(path, 'w', 0o644)
  try {
    await h.writeFile(text, 'utf8')
    await h.sync()
  } finally {
    await h.close()
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r')
  try {
    await h.sync()
  } finally {
    await h.close()
  }
}
