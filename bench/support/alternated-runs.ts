/**
 * One request in flight on one connection, several systems taking turns in short blocks.
 *
 * This VM changes speed in phases of seconds (the echo's round trip moves between ≈ 70 and ≈ 250 µs from one
 * phase to another) and stalls for one to ten milliseconds a few dozen times per 10,000 requests. When each
 * system runs its 10,000 requests in one go, two systems a few percent apart land on different phases and
 * their ratio swings by ±15 % from run to run. Here a run gives every system the same number of requests
 * in blocks of `block`, taking turns (the order of the turn rotates every round, so no system always
 * follows the same one), and each system's time, latencies and CPU are summed over its own blocks only:
 * a phase lasting longer than a round falls on all of them alike. Nothing is left out; a stall still counts
 * for whichever system it hit.
 */
import { percentileOfSorted } from './stats.js'

export interface AlternatedSystem {
  one: (conn: number, i: number) => Promise<unknown>
  /** CPU seconds of the system's server side so far. */
  serverCpu: () => number
}

export interface AlternatedSample {
  reqPerS: number
  p50Us: number
  p99Us: number
  serverCpuUsPerReq: number
  clientCpuUsPerReq: number
}

/** One run: `requests` per system (a multiple of `block` is used), in rotating turns of `block` requests. */
export async function runAlternated(systems: readonly AlternatedSystem[], requests: number, block: number): Promise<AlternatedSample[]> {
  const rounds = Math.max(1, Math.round(requests / block))
  const n = systems.length
  const lat = systems.map(() => new Float64Array(rounds * block))
  const seconds = new Float64Array(n)
  const serverCpu = new Float64Array(n)
  const clientCpuUs = new Float64Array(n)
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < n; k++) {
      const s = (r + k) % n
      const sys = systems[s]!
      const l = lat[s]!
      const cpu0 = sys.serverCpu()
      const c0 = process.cpuUsage()
      const t0 = process.hrtime.bigint()
      for (let j = 0; j < block; j++) {
        const i = r * block + j
        const q = process.hrtime.bigint()
        await sys.one(0, i)
        l[i] = Number(process.hrtime.bigint() - q) / 1000
      }
      seconds[s]! += Number(process.hrtime.bigint() - t0) / 1e9
      const c = process.cpuUsage(c0)
      clientCpuUs[s]! += c.user + c.system
      serverCpu[s]! += sys.serverCpu() - cpu0
    }
  }
  const done = rounds * block
  return systems.map((_, s) => {
    const sorted = lat[s]!.sort()
    return {
      reqPerS: done / seconds[s]!,
      p50Us: percentileOfSorted(sorted, 0.5),
      p99Us: percentileOfSorted(sorted, 0.99),
      serverCpuUsPerReq: (serverCpu[s]! * 1e6) / done,
      clientCpuUsPerReq: clientCpuUs[s]! / done,
    }
  })
}
