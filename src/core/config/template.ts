/**
 * The commented `pageserver.toml` that `pageserver init` writes and `.neon.example/pageserver.toml` holds.
 *
 * Generated from the schema table, so it always lists every key with its doc and default. Each key appears
 * commented out with its default (optional keys with examples); keys chosen with `-c` at `init` appear
 * uncommented with the chosen value. The text has no machine-specific content, so the template without
 * choices is byte-for-byte the committed example (a test checks it).
 */
import { assert } from '../lib/errors.js'
import { CONFIG_ENTRIES, type ConfigEntry } from './schema.js'
import { formatKeyName, formatRawTomlValue, formatTomlValue, parseTomlDocument, type RawTable } from './toml-text.js'

/** Comment lines are wrapped to this width. */
const WRAP_COLUMNS = 100

const HEADER = `pageserver.toml: configuration of one page server working directory.

Every key is listed with its default, commented out: uncomment a line to change it. Sizes take a byte count or a unit ("256MiB", "64MB", "1GiB"); durations take a unit ("500ms", "10s", "10m", "1h", "7d"). Relative paths are relative to this directory. An unknown key is an error.

Any key can be overridden for one run with -c, a TOML fragment whose top-level keys replace the same keys here (whole tables, no merge); a bare value that is not TOML is taken as a string:
    pageserver <command> -c checkpoint_distance=268435456 -c checkpoint_timeout=10s
    pageserver <command> -c "remote_storage={local_path='/some/path/'}"

Credentials never come from this file: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (S3) or AZURE_STORAGE_ACCESS_KEY (Azure) in the environment.`

function wrapComment(text: string, prefix = '# '): string[] {
  const out: string[] = []
  for (const paragraph of text.split('\n')) {
    if (paragraph.trim() === '') {
      out.push('#')
      continue
    }
    if (paragraph.startsWith('    ')) {
      out.push(prefix + paragraph)
      continue
    }
    let line = ''
    for (const word of paragraph.split(/\s+/)) {
      if (line !== '' && prefix.length + line.length + 1 + word.length > WRAP_COLUMNS) {
        out.push(prefix + line)
        line = word
      } else {
        line = line === '' ? word : `${line} ${word}`
      }
    }
    if (line !== '') out.push(prefix + line)
  }
  return out
}

function entryLines(entry: ConfigEntry, chosen: RawTable): string[] {
  const lines = wrapComment(entry.doc)
  const name = formatKeyName(entry.toml)
  if (entry.toml in chosen) {
    lines.push(`${name} = ${formatRawTomlValue(chosen[entry.toml])}`)
  } else if (entry.type === 'alias') {
    lines.push(`#${name} = ${formatTomlValue('Trust')}`)
  } else if (entry.default !== null) {
    lines.push(`#${name} = ${formatTomlValue(entry.default)}`)
  } else {
    for (const example of entry.examples) lines.push(`#${name} = ${formatTomlValue(example)}`)
  }
  return lines
}

/**
 * The commented config. `chosen` holds keys to write uncommented (the raw values of `-c` overrides, already
 * validated by the loader); every chosen key must be a known key.
 */
export function renderConfigTemplate(chosen: Readonly<RawTable> = {}): string {
  const known = new Set(CONFIG_ENTRIES.map((e) => e.toml))
  for (const k of Object.keys(chosen)) assert(known.has(k), `template: unknown chosen key ${k}`)
  const lines = wrapComment(HEADER)
  let group = ''
  for (const entry of CONFIG_ENTRIES) {
    if (entry.group !== group) {
      group = entry.group
      lines.push('', `# ---- ${group} ----`)
    }
    lines.push('', ...entryLines(entry, chosen))
  }
  const text = lines.join('\n') + '\n'
  // Assert the pair: what we write parses back to exactly the chosen keys.
  const back = parseTomlDocument(text, 'generated pageserver.toml')
  assert(
    Object.keys(back).length === Object.keys(chosen).length && Object.keys(chosen).every((k) => k in back),
    'template: the generated file does not hold exactly the chosen keys',
  )
  return text
}
