import { describe, expect, it } from "vitest"
import { failures } from "./support.ts"
import { runScenario } from "../../src/sim/cluster.ts"
import { type Scenario, generateScenario } from "../../src/sim/scenario.ts"

/**
 * The cluster's properties over seeded fault schedules (`bulletin sim --seed
 * S` replays any of them), each run in the simulator with the real roles:
 * servers, reference, broker, proxy, clients and bots. A failure names the
 * command that replays it.
 */

const seedsInCi = Number(process.env.SIM_SEEDS ?? 200)

describe("the cluster under seeded faults", () => {
  it(`holds for ${seedsInCi} seeded schedules (bulletin sim --seed S)`, () => {
    const started = performance.now()
    const bad: Array<string> = []
    let agreementMaxMs = 0
    let spreadMaxMs = 0
    let requests = 0
    let acknowledged = 0
    for (let seed = 1; seed <= seedsInCi; seed++) {
      const r = runScenario(generateScenario(seed))
      agreementMaxMs = Math.max(agreementMaxMs, r.stats.agreementAfterHealMs ?? Number.POSITIVE_INFINITY)
      spreadMaxMs = Math.max(spreadMaxMs, r.stats.clockSpreadMs ?? Number.POSITIVE_INFINITY)
      requests += r.stats.requests
      acknowledged += r.stats.acknowledged
      if (!r.ok) bad.push(`replay: bulletin sim --seed ${seed}\n${failures(r)}`)
    }
    const seconds = (performance.now() - started) / 1000
    console.log(
      `sim: ${seedsInCi} schedules in ${seconds.toFixed(1)} s (${(seedsInCi / seconds).toFixed(1)}/s); ${requests} client requests, ${acknowledged} writes acknowledged; agreement after heal <= ${agreementMaxMs} ms; clock spread after sync <= ${spreadMaxMs.toFixed(3)} ms`,
    )
    expect(bad, bad.join("\n\n")).toEqual([])
  }, 240_000)

  it("replays a seed exactly", () => {
    const a = runScenario(generateScenario(42), { timeline: true })
    const b = runScenario(generateScenario(42), { timeline: true })
    expect(a.timeline).toEqual(b.timeline)
    expect(a.timeline.length).toBeGreaterThan(50)
    expect(a.stats).toEqual(b.stats)
  })

  it("records the monitoring channel without changing the run", () => {
    const plain = runScenario(generateScenario(3), { timeline: true })
    const recorded = runScenario(generateScenario(3), { timeline: true, record: true })
    expect(recorded.timeline).toEqual(plain.timeline)
    expect(recorded.monitoring!.reports.length).toBeGreaterThan(100)
    expect(new Set(recorded.monitoring!.reports.map((r) => r.server)).size).toBe(generateScenario(3).servers)
  })
})

describe("a coordinator crash on a clean network", () => {
  it("the next-highest server takes over within the failure-detection bound", () => {
    const worst: Array<number> = []
    for (let seed = 1; seed <= 10; seed++) {
      const base = generateScenario(seed)
      // Every server up and agreed by 10 s; then crash whoever coordinates.
      const scenario: Scenario = {
        ...base,
        network: { delayMinMs: 1, delayMaxMs: 20, dropRate: 0, duplicateRate: 0, reorderRate: 0 },
        faults: [],
        faultPhaseMs: 10_000,
        healPhaseMs: 40_000,
      }
      const probe = runScenario(scenario)
      expect(probe.ok, failures(probe)).toBe(true)
      const first = probe.stats.coordinator!
      const crashed = runScenario({ ...scenario, faultPhaseMs: 30_000, faults: [{ at: 10_000, kind: "crash", node: first }] })
      // The crashed server restarts at the heal (30 s) and takes over again: both elections are measured.
      expect(crashed.ok, failures(crashed)).toBe(true)
      const takeover = crashed.stats.coordinatorCrashes[0]?.newCoordinatorAfterMs
      expect(takeover).toBeDefined()
      worst.push(takeover!)
    }
    const c = { heartbeatIntervalMs: 1_000, livenessMax: 3, electionTimeoutMs: 1_000, requestTimeoutMs: 800 }
    // Detection: livenessMax silent intervals (+1 for phase); then one election round.
    const boundMs = (c.livenessMax + 1) * c.heartbeatIntervalMs + c.electionTimeoutMs + c.requestTimeoutMs + 2 * 20
    console.log(`sim: new coordinator after a crash: max ${Math.max(...worst)} ms, median ${[...worst].sort((a, b) => a - b)[worst.length >> 1]} ms (bound ${boundMs} ms)`)
    expect(Math.max(...worst)).toBeLessThanOrEqual(boundMs)
  })
})
