import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { failures } from "./support.ts"
import type { Op } from "../../src/protocol/ops.ts"
import { replicaChecks, runScenario } from "../../src/sim/cluster.ts"
import { type Scenario, generateScenario } from "../../src/sim/scenario.ts"
import { Ledger, type Write } from "../../src/sim/workload.ts"
import { openMemory } from "../../src/store/OrderedKv.ts"
import { makeStore } from "../../src/store/Store.ts"

/** Replication scenarios the generated schedules may not hit often: named, with what they must show. */

const base = (seed: number): Scenario => ({
  ...generateScenario(seed),
  servers: 3,
  network: { delayMinMs: 1, delayMaxMs: 15, dropRate: 0, duplicateRate: 0, reorderRate: 0 },
  clocks: [{ skewMs: 0, driftPpm: 0 }, { skewMs: 50, driftPpm: 20 }, { skewMs: -50, driftPpm: -20 }],
  writesPerSecond: 25,
  messagesPerSecond: 10,
  clients: 3,
  bots: 1,
  disk: { flushMsMin: 0.5, flushMsMax: 4 },
  faultPhaseMs: 30_000,
  healPhaseMs: 40_000,
  faults: [],
})

describe("replication in the simulator (the real servers and clients)", () => {
  it("a server cut off for 20 s catches up everything it missed", () => {
    for (const seed of [1, 2, 3]) {
      const scenario: Scenario = {
        ...base(seed),
        faults: [
          { at: 5_000, kind: "partition", groups: [["s1"], ["s2", "s3", "reference", "proxy", "broker"]] },
          { at: 25_000, kind: "heal" },
        ],
      }
      const r = runScenario(scenario)
      // The set check covers s1: every write acknowledged by s2 and s3 while it was away is on it too.
      expect(r.ok, failures(r)).toBe(true)
      expect(r.stats.acknowledged).toBeGreaterThan(300)
      // Its connections were dropped by the heartbeat timeout: what it missed had to be pulled, not resent by TCP.
      expect(r.stats.network["connections dropped by heartbeat timeout"]).toBeGreaterThanOrEqual(4)
    }
  })

  it("a server restarted with its in-memory state wiped rebuilds from its disk and catches up the rest", () => {
    for (const seed of [6, 7, 8]) {
      const scenario: Scenario = {
        ...base(seed),
        faults: [
          { at: 6_000, kind: "crash", node: "s2" },
          { at: 16_000, kind: "restart", node: "s2" },
        ],
      }
      const r = runScenario(scenario)
      expect(r.ok, failures(r)).toBe(true)
      expect(r.stats.catchUps.some((c) => c.ops > 50)).toBe(true)
    }
  })

  it("every role crashing in turn while clients write loses no acknowledged write", () => {
    const scenario: Scenario = {
      ...base(11),
      faults: [
        { at: 3_000, kind: "crash", node: "s1" },
        { at: 6_000, kind: "restart", node: "s1" },
        { at: 9_000, kind: "crash", node: "s2" },
        { at: 12_000, kind: "restart", node: "s2" },
        { at: 15_000, kind: "crash", node: "s3" },
        { at: 18_000, kind: "restart", node: "s3" },
        { at: 21_000, kind: "crash", node: "proxy" },
        { at: 24_000, kind: "restart", node: "proxy" },
        { at: 25_000, kind: "crash", node: "broker" },
        { at: 26_000, kind: "restart", node: "broker" },
        { at: 27_000, kind: "crash", node: "reference" },
        { at: 28_000, kind: "restart", node: "reference" },
      ],
    }
    const r = runScenario(scenario)
    expect(r.ok, failures(r)).toBe(true)
    expect(r.stats.acknowledged).toBeGreaterThan(300)
  })

  it("a write that fails on the disk consumes no sequence number: every origin's position converges", () => {
    // Before the fix a failed write burned its seq: the retry took n+1, seq n
    // never existed anywhere, and every replica's position for that origin
    // stayed at n-1 for good (every later read-your-writes wait timed out).
    const faults: Array<Scenario["faults"][number]> = []
    for (let i = 0; i < 18; i++) faults.push({ at: 2_000 + i * 1_500, kind: "diskError", node: `s${1 + (i % 3)}` })
    const r = runScenario({ ...base(21), faults }, { timeline: true })
    expect(r.ok, failures(r)).toBe(true)
    // Writes of the servers' own ops failed (not just replicated batches, which are pulled again anyway).
    const ownFailed = r.timeline.filter((l) => /^\s*[\d.]+s  s\d .*(publish|message|login|channel) not applied: this server cannot write to its disk \(EIO\)/.test(l))
    expect(ownFailed.length, r.timeline.filter((l) => /EIO/.test(l)).join("\n")).toBeGreaterThan(3)
    expect(r.checks.find((c) => /position converged/.test(c.name))?.ok).toBe(true)
  })

  it("a full disk: the server answers a clear error, keeps serving, and writes again when space returns", () => {
    const r = runScenario({ ...base(22), faults: [{ at: 5_000, kind: "diskFull", node: "s1", forMs: 8_000 }] }, { timeline: true })
    expect(r.ok, failures(r)).toBe(true)
    const full = r.timeline.filter((l) => /\bs1\b.*WARN .*not applied: this server's disk is full/.test(l))
    expect(full.length).toBeGreaterThan(0)
    // Clients were told, retried (retry: true) on another server, and were acknowledged.
    expect(r.stats.acknowledged).toBeGreaterThan(300)
    const times = full.map((l) => Number(l.trim().split("s ")[0]))
    expect(Math.min(...times)).toBeGreaterThanOrEqual(5)
    expect(Math.max(...times)).toBeLessThan(13.1)
  })
})

describe("the set checker", () => {
  const post = (origin: string, seq: number, message: string): Op => ({ kind: "publish", user: "u", channel: "general", message, origin, seq, clock: seq, timestamp: 0 })
  const replica = (name: string, ops: ReadonlyArray<Op>) => {
    const store = makeStore(openMemory())
    for (const op of ops) Effect.runSync(store.apply(op))
    return { name, store }
  }
  const ledgerOf = (acked: ReadonlyArray<string>) => {
    const ledger = new Ledger()
    for (const key of acked) {
      const w: Write = { kind: "post", client: "u1", key, channel: "general", startedAt: 0, endedAt: 1, acked: true, cursor: undefined, retried: false, error: undefined }
      ledger.writes.push(w)
    }
    return ledger
  }

  it("passes identical complete replicas", () => {
    const ops = [post("s1", 1, "a"), post("s1", 2, "b")]
    const checks = replicaChecks([replica("x", ops), replica("y", ops)], ledgerOf(["a", "b"]))
    expect(checks.every((c) => c.ok), JSON.stringify(checks)).toBe(true)
  })

  it("catches a lost write, a phantom write, diverging replicas and a stuck position", () => {
    const checks = replicaChecks(
      [replica("x", [post("s1", 1, "a"), post("s1", 2, "b")]), replica("y", [post("s1", 1, "a"), post("s2", 2, "ghost")])],
      ledgerOf(["a", "b"]),
    )
    expect(checks[0]!.ok).toBe(false)
    expect(checks[0]!.detail).toMatch(/y posts: 1 lost \(b\), 0 duplicated, 1 never written \(ghost\)/)
    expect(checks[1]!.ok).toBe(false)
    expect(checks[2]!.ok).toBe(false)
    expect(checks[2]!.detail).toMatch(/y holds s2 up to 0 of 2/)
  })
})
