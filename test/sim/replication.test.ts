import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import type { Op } from "../../src/protocol/ops.ts"
import { type SimResult, replicaChecks, runScenario } from "../../src/sim/cluster.ts"
import { type Scenario, generateScenario } from "../../src/sim/scenario.ts"
import { openMemory } from "../../src/store/OrderedKv.ts"
import { makeStore } from "../../src/store/Store.ts"

/** Replication scenarios the generated schedules may not hit often: named, with what they must show. */
const failures = (r: SimResult) =>
  r.checks
    .filter((c) => !c.ok)
    .map((c) => `${c.name}: ${c.detail}`)
    .join("\n")

const base = (seed: number): Scenario => ({
  ...generateScenario(seed),
  servers: 3,
  network: { delayMinMs: 1, delayMaxMs: 15, dropRate: 0.02, duplicateRate: 0.02 },
  clocks: [{ skewMs: 0, driftPpm: 0 }, { skewMs: 50, driftPpm: 20 }, { skewMs: -50, driftPpm: -20 }],
  writesPerSecond: 25,
  faultPhaseMs: 30_000,
  healPhaseMs: 40_000,
  faults: [],
})

describe("replication in the simulator", () => {
  it("a server cut off for 20 s catches up everything it missed", () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const scenario: Scenario = {
        ...base(seed),
        faults: [
          { at: 5_000, kind: "partition", groups: [["s1"], ["s2", "s3", "reference", "proxy"]] },
          { at: 25_000, kind: "heal" },
        ],
      }
      const r = runScenario(scenario, { timeline: true })
      expect(r.ok, failures(r)).toBe(true)
      expect(r.stats.acknowledged).toBeGreaterThan(300)
      // s1 pulled what the others wrote while it was away.
      const pulled = r.stats.catchUps.reduce((n, c) => n + c.ops, 0)
      expect(pulled, r.timeline.filter((l) => /catch|gap/.test(l)).join("\n")).toBeGreaterThan(100)
    }
  })

  it("a server restarted with its in-memory state wiped rebuilds from its disk and catches up the rest", () => {
    for (const seed of [6, 7, 8, 9, 10]) {
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

  it("every server crashing in turn while clients write loses no acknowledged post", () => {
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
      ],
    }
    const r = runScenario(scenario)
    expect(r.ok, failures(r)).toBe(true)
  })
})

describe("the set checker", () => {
  const post = (origin: string, seq: number, message: string): Op => ({ kind: "publish", user: "u", channel: "general", message, origin, seq, clock: seq, timestamp: 0 })
  const replica = (name: string, ops: ReadonlyArray<Op>) => {
    const store = makeStore(openMemory())
    for (const op of ops) Effect.runSync(store.apply(op))
    return { name, store }
  }

  it("passes identical complete replicas", () => {
    const ops = [post("s1", 1, "a"), post("s1", 2, "b")]
    const checks = replicaChecks([replica("x", ops), replica("y", ops)], [{ message: "a", acked: true }, { message: "b", acked: true }])
    expect(checks.every((c) => c.ok)).toBe(true)
  })

  it("catches a lost write, a phantom write and diverging replicas", () => {
    const checks = replicaChecks(
      [replica("x", [post("s1", 1, "a"), post("s1", 2, "b")]), replica("y", [post("s1", 1, "a"), post("s2", 1, "ghost")])],
      [{ message: "a", acked: true }, { message: "b", acked: true }],
    )
    expect(checks[0]!.ok).toBe(false)
    expect(checks[0]!.detail).toMatch(/y: 1 lost, 0 duplicated, 1 never written/)
    expect(checks[1]!.ok).toBe(false)
  })
})
