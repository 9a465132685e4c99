/**
 * No worker outlives the page server: a parent process with a manager and two workers is SIGKILLed (no
 * cleanup code runs), and the workers must notice EOF on stdin and exit.
 */
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { pathToFileURL } from 'node:url'
import { describe, expect, it } from 'vitest'
import { defaultWorkerCommand } from '../../../src/core/walredo/worker-command.js'
import { fakeWorker, fixture, isAlive, waitGone } from './support.js'

const tsxLoader = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href
/** Bound on how long an orphaned worker may take to notice EOF and exit. */
const ORPHAN_EXIT_BOUND_MS = 5000

async function killParentAndWatchWorkers(workerCommand: string[]): Promise<void> {
  const parent = spawn(process.execPath, ['--import', tsxLoader, fixture('leak-parent.mjs'), JSON.stringify(workerCommand)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  parent.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  let pids: number[] = []
  try {
    pids = await new Promise<number[]>((resolve, reject) => {
      let out = ''
      parent.stdout.on('data', (c: Buffer) => {
        out += c.toString()
        const nl = out.indexOf('\n')
        if (nl >= 0) resolve((JSON.parse(out.slice(0, nl)) as { pids: number[] }).pids)
      })
      parent.on('exit', (code) => reject(new Error(`leak-parent exited early (${code}): ${stderr}`)))
    })
    expect(pids).toHaveLength(2)
    for (const pid of pids) expect(isAlive(pid)).toBe(true)
  } finally {
    parent.kill('SIGKILL')
  }
  const survivors = await waitGone(pids, ORPHAN_EXIT_BOUND_MS)
  for (const pid of survivors) process.kill(pid, 'SIGKILL') // leave nothing behind even when failing
  expect(survivors).toEqual([])
}

describe('no worker left behind when the parent is killed', () => {
  it('fake echo workers exit on EOF of stdin', async () => {
    await killParentAndWatchWorkers(fakeWorker('echo-worker.mjs'))
  })

  it('our worker-main exits on EOF of stdin', async () => {
    await killParentAndWatchWorkers(defaultWorkerCommand({ hintBitsLogged: false }))
  })
})
