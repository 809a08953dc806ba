import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { MonitorReport } from "../../src/actors/monitor.ts"
import { type Cluster, spawnBulletin, startCluster, stopAll } from "../support/procs.ts"

/**
 * The monitoring channel over real processes: `bulletin monitor --json`
 * sees every server's report (identity, role, machine states), and the
 * machine transitions of an election when the coordinator is killed.
 */
const host = "127.81.34.1"
let cluster: Cluster

beforeAll(async () => {
  cluster = await startCluster(host, 3)
}, 60_000)
afterAll(stopAll)

const reports = (lines: ReadonlyArray<string>) => lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as MonitorReport)

describe("monitoring channel", () => {
  it("reports every server's role and machine states, and the transitions of an election", async () => {
    const monitor = spawnBulletin("monitor", ["monitor", "--proxy", host, "--json", "--seconds", "40"])
    const latest = () => {
      const by = new Map<string, MonitorReport>()
      for (const r of reports(monitor.lines)) by.set(r.server, r)
      return by
    }
    const until = async <T>(what: string, f: () => T | undefined, timeoutMs = 20_000) => {
      const deadline = performance.now() + timeoutMs
      for (;;) {
        const v = f()
        if (v !== undefined) return v
        if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}; last reports:\n${monitor.lines.slice(-6).join("\n")}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    }
    const agreed = await until("three servers agreeing on one coordinator", () => {
      const by = latest()
      const coords = new Set([...by.values()].map((r) => r.coordinator))
      // Settled: each sees both others, and has caught up with them (a peer that has just appeared in the list is pulled from first).
      const settled = [...by.values()].every((r) => r.peers.length === 2 && /^live/.test(r.states.replication ?? ""))
      return by.size === 3 && coords.size === 1 && !coords.has(undefined) && settled ? by : undefined
    })
    const first = [...agreed.values()][0]!.coordinator!
    for (const r of agreed.values()) {
      // Every machine running; followers also watch the coordinator's heartbeat.
      expect(Object.keys(r.states).sort()).toEqual(r.server === first ? ["berkeley", "bully", "referenceHeartbeat", "replication"] : ["berkeley", "bully", "coordinatorHeartbeat", "referenceHeartbeat", "replication"])
      expect(r.states.replication).toMatch(/^live/)
      expect(r.states.bully).toBe(r.server === first ? "leader.announcing" : "follower")
      // Only the coordinator runs Berkeley rounds.
      if (r.server === first) expect(r.states.berkeley).toMatch(/^active/)
      else expect(r.states.berkeley).toBe("inactive")
      expect(r.referenceUp).toBe(true)
      expect(r.peers.length, JSON.stringify(r)).toBe(2)
    }
    const killedAt = monitor.lines.length
    await cluster.servers[Number(first.split("-")[1]) - 1]!.stop("SIGKILL")
    const next = await until("a new coordinator in the reports", () => {
      const by = latest()
      by.delete(first)
      const coords = new Set([...by.values()].map((r) => r.coordinator))
      return coords.size === 1 && !coords.has(first) && !coords.has(undefined) ? [...coords][0] : undefined
    })
    const transitions = reports(monitor.lines.slice(killedAt)).flatMap((r) => r.transitions.map((t) => ({ server: r.server, ...t })))
    console.log(`monitor: after SIGKILL of ${first}: ${transitions.filter((t) => t.machine === "bully").map((t) => `${t.server} ${t.from} -> ${t.to}`).join("; ")}`)
    expect(transitions.some((t) => t.server === next && t.machine === "bully" && t.to === "leader.announcing")).toBe(true)
    expect(transitions.some((t) => t.machine === "bully" && t.to === "electing")).toBe(true)
    await monitor.stop()
  }, 60_000)
})
