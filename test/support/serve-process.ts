/**
 * Runs `pageserver serve` as a child process for end-to-end tests: free ports (port 0), the addresses read
 * from the workdir lock file once it listens, and a stop that sends SIGTERM and waits (then SIGKILL).
 * Always stopped by the test's teardown; an exit hook kills it as a last resort.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { CLI_BIN } from './cli.js'

const live = new Set<ChildProcess>()
let hooked = false

export interface ServeHandle {
  child: ChildProcess
  pgAddr: string
  httpAddr: string
  stderr(): string
  stdout(): string
  /** SIGTERM, then wait for exit (SIGKILL after `timeoutMs`); resolves with the exit code (null if killed). */
  stop(timeoutMs?: number): Promise<number | null>
}

export async function startServe(workdir: string, extraArgs: string[] = [], env: Record<string, string> = {}): Promise<ServeHandle> {
  if (!hooked) {
    hooked = true
    process.on('exit', () => {
      for (const c of live) c.kill('SIGKILL')
    })
  }
  const child = spawn(process.execPath, [CLI_BIN, 'serve', '-c', 'listen_pg_addr=127.0.0.1:0', '-c', 'listen_http_addr=127.0.0.1:0', '-c', 'no_sync=true', ...extraArgs], {
    env: { PATH: process.env.PATH, PAGESERVER_WORKDIR: workdir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  live.add(child)
  let out = ''
  let err = ''
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()))
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => {
    live.delete(child)
    resolve(code)
  }))
  const deadline = Date.now() + 30_000
  // The startup line: text, or with --json a JSON line {"listening": {...}}.
  while (!out.includes('pageserver listening') && !out.includes('{"listening"')) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`serve did not start (exit ${child.exitCode}): ${err}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  const lock = JSON.parse(readFileSync(join(workdir, 'pageserver.lock'), 'utf8')) as { pgAddr: string; httpAddr: string }
  return {
    child,
    pgAddr: lock.pgAddr,
    httpAddr: lock.httpAddr,
    stderr: () => err,
    stdout: () => out,
    stop: async (timeoutMs = 30_000) => {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
      child.kill('SIGTERM')
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
      const code = await exited
      clearTimeout(t)
      return code
    },
  }
}
