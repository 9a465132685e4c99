#!/usr/bin/env node
// Generates man/*.1 from oclif.manifest.json (itself generated from the command classes), so the man pages
// cannot drift from the flags the commands really accept. `npm run build` runs it; a test checks the
// committed pages equal a fresh generation. Usage: node scripts/gen-man.js [--check] [outdir]
import { readFileSync, writeFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const args = process.argv.slice(2)
const check = args.includes('--check')
const outDir = args.find((a) => !a.startsWith('--')) ?? join(root, 'man')
const manifest = JSON.parse(readFileSync(join(root, 'oclif.manifest.json'), 'utf8'))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const DATE = 'pageserver ' + pkg.version

const esc = (s) =>
  String(s ?? '')
    .replace(/\\/g, '\\e')
    .replace(/^\./gm, '\\&.')
    .replace(/^'/gm, "\\&'")
    .replace(/-/g, '\\-')

// The same wording as the README's "Exit codes"; the numbers are core/lib/errors.ts EXIT_CODES (a test
// checks that each page lists exactly those).
const EXIT_CODES = [
  [0, 'success'],
  [1, 'internal error (a bug; rerun with PAGESERVER_DEBUG=1 and report it)'],
  [2, 'usage: flags, arguments or configuration, refused input or authentication, an unknown command, an output path that cannot be written (OUTPUT_NOT_WRITABLE)'],
  [3, 'not found: unknown tenant, timeline, file, relation or slot'],
  [4, 'conflict: already exists, locked by another process, in use'],
  [5, 'corruption: a checksum, magic number or structural check failed'],
  [6, 'unavailable: PostgreSQL, a redo worker or the page server could not be reached; an I/O error; a full file system (DISK_FULL)'],
  [7, 'timeout'],
  [8, 'unsupported: valid input this version cannot handle'],
  [130, 'interrupted'],
]

function exitSection() {
  let s = '.SH EXIT STATUS\n'
  for (const [code, text] of EXIT_CODES) s += `.TP\n.B ${code}\n${esc(text)}\n`
  s += '.PP\nA command whose DESCRIPTION gives a code a meaning of its own (a finding it reports, such as a mismatch) uses that meaning. Under \\-\\-json, check .error.code as well: one exit code covers several causes.\n'
  return s
}

function flagLine(f) {
  const names = [f.char ? `\\-${f.char}` : null, `\\-\\-${esc(f.name)}`].filter(Boolean).join(', ')
  const value = f.type === 'option' ? ` ${esc(f.helpValue ?? (f.options ? f.options.join('|') : 'VALUE'))}` : ''
  return `${names}${value ? '\\fI' + value + '\\fR' : ''}`
}

function commandPage(cmd) {
  const name = `pageserver-${cmd.id.replace(/[: ]/g, '-')}`
  const words = cmd.id.replace(/:/g, ' ')
  let s = `.TH ${name.toUpperCase()} 1 "" "${DATE}" "pageserver manual"\n`
  s += `.SH NAME\n${esc(name)} \\- ${esc(cmd.summary ?? cmd.description?.split('\n')[0] ?? '')}\n`
  const argNames = Object.values(cmd.args ?? {}).map((a) => (a.required ? a.name.toUpperCase() : `[${a.name.toUpperCase()}]`))
  s += `.SH SYNOPSIS\n.B pageserver ${esc(words)}\n${esc(argNames.join(' '))} [\\fIFLAGS\\fR]\n`
  if (cmd.description) s += `.SH DESCRIPTION\n${esc(cmd.description)}\n`
  const args = Object.values(cmd.args ?? {})
  if (args.length) {
    s += '.SH ARGUMENTS\n'
    for (const a of args) s += `.TP\n.B ${esc(a.name.toUpperCase())}\n${esc(a.description ?? '')}\n`
  }
  const flags = Object.values(cmd.flags ?? {}).sort((a, b) => (a.helpGroup === 'GLOBAL') - (b.helpGroup === 'GLOBAL') || a.name.localeCompare(b.name))
  if (flags.length) {
    s += '.SH OPTIONS\n'
    for (const f of flags) {
      let text = f.summary ?? f.description ?? ''
      if (f.summary && f.description) text += '\n' + f.description
      if (f.default !== undefined && f.default !== false) text += ` (default: ${Array.isArray(f.default) ? f.default.join(',') : f.default})`
      if (f.env) text += ` (environment: ${f.env})`
      if (f.required) text += ' (required)'
      s += `.TP\n${flagLine(f)}\n${esc(text)}\n`
    }
  }
  if (cmd.examples?.length) {
    s += '.SH EXAMPLES\n'
    for (const ex of cmd.examples) {
      const text = typeof ex === 'string' ? ex : `${ex.description}\n${ex.command}`
      s += `.PP\n.nf\n${esc(text.replace(/<%= config.bin %>/g, 'pageserver').replace(/<%= command.id %>/g, words))}\n.fi\n`
    }
  }
  s += exitSection()
  s += `.SH SEE ALSO\n.BR pageserver (1)\n`
  return [name + '.1', s]
}

function overviewPage(cmds) {
  let s = `.TH PAGESERVER 1 "" "${DATE}" "pageserver manual"\n`
  s += `.SH NAME\npageserver \\- ${esc(pkg.description)}\n`
  s += `.SH SYNOPSIS\n.B pageserver\n\\fICOMMAND\\fR [\\fIFLAGS\\fR]\n`
  s += '.SH COMMANDS\n'
  for (const c of cmds) s += `.TP\n.B ${esc(c.id.replace(/:/g, ' '))}\n${esc(c.summary ?? '')}\n`
  s += '.SH GLOBAL OPTIONS\n'
  s += '.TP\n\\-D, \\-\\-workdir \\fIDIR\\fR\nWorking directory (default .neon, or PAGESERVER_WORKDIR).\n'
  s += '.TP\n\\-c, \\-\\-config \\fIKEY=VALUE\\fR\nOverride a config key with a TOML fragment; repeatable.\n'
  s += '.TP\n\\-\\-json\nPrint the result as JSON on stdout; errors as {"error": {"code", "message", "hint"}}.\n'
  s += exitSection()
  s += '.SH SEE ALSO\n' + cmds.map((c) => `.BR pageserver\\-${esc(c.id.replace(/[: ]/g, '-'))} (1)`).join(',\n') + '\n'
  return ['pageserver.1', s]
}

const cmds = Object.values(manifest.commands)
  .filter((c) => !c.hidden)
  .sort((a, b) => a.id.localeCompare(b.id))
const pages = new Map([overviewPage(cmds), ...cmds.map(commandPage)])

if (check) {
  let stale = []
  const existing = new Set(readdirSync(outDir).filter((f) => f.endsWith('.1')))
  for (const [file, text] of pages) {
    let cur = null
    try {
      cur = readFileSync(join(outDir, file), 'utf8')
    } catch {}
    if (cur !== text) stale.push(file)
    existing.delete(file)
  }
  stale.push(...[...existing].map((f) => `${f} (no such command)`))
  if (stale.length) {
    console.error(`man pages out of date: ${stale.join(', ')}; run npm run build`)
    process.exit(1)
  }
  console.log(`${pages.size} man pages up to date`)
} else {
  mkdirSync(outDir, { recursive: true })
  for (const f of readdirSync(outDir)) if (f.endsWith('.1') && !pages.has(f)) rmSync(join(outDir, f))
  for (const [file, text] of pages) writeFileSync(join(outDir, file), text)
  console.log(`wrote ${pages.size} man pages to ${outDir}`)
}
