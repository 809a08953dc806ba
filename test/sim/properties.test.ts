import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { type SimResult, runScenario } from "../../src/sim/cluster.ts"
import { type Scenario, generateScenario } from "../../src/sim/scenario.ts"
import { scenarioArb } from "./arbitraries.ts"

/**
 * The coordination properties over generated fault schedules, each run in
 * the deterministic simulator with the real machines. A failure names the
 * command that replays it and prints its timeline.
 */
const failures = (r: SimResult) =>
  r.checks
    .filter((c) => !c.ok)
    .map((c) => `${c.name}: ${c.detail}`)
    .join("\n")

const seedsInCi = Number(process.env.SIM_SEEDS ?? 200)
const runsInCi = Number(process.env.SIM_RUNS ?? 150)

describe("coordination under generated faults", () => {
  it(`holds for ${seedsInCi} seeded schedules (bulletin sim --seed S)`, () => {
    const started = performance.now()
    const bad: Array<string> = []
    let agreementMaxMs = 0
    let spreadMaxMs = 0
    for (let seed = 1; seed <= seedsInCi; seed++) {
      const r = runScenario(generateScenario(seed))
      agreementMaxMs = Math.max(agreementMaxMs, r.stats.agreementAfterHealMs ?? Number.POSITIVE_INFINITY)
      spreadMaxMs = Math.max(spreadMaxMs, r.stats.clockSpreadMs ?? Number.POSITIVE_INFINITY)
      if (!r.ok) bad.push(`replay: bulletin sim --seed ${seed}\n${failures(r)}`)
    }
    const seconds = (performance.now() - started) / 1000
    console.log(`sim: ${seedsInCi} schedules in ${seconds.toFixed(1)} s (${(seedsInCi / seconds).toFixed(1)}/s); agreement after heal <= ${agreementMaxMs} ms; clock spread after sync <= ${spreadMaxMs.toFixed(3)} ms`)
    expect(bad, bad.join("\n\n")).toEqual([])
  })

  it(`holds for ${runsInCi} fast-check schedules, shrinking any failure`, () => {
    fc.assert(
      fc.property(scenarioArb, (scenario: Scenario) => {
        const r = runScenario(scenario)
        if (!r.ok) throw new Error(`${failures(r)}\nreplay: bulletin sim --scenario '${JSON.stringify(scenario)}'`)
      }),
      { numRuns: runsInCi },
    )
  })

  it("shrinks a failing schedule to a small one that names its cause", () => {
    // A claim that is false on purpose ("the first agreed coordinator never
    // crashes"): the run must find a counterexample and shrink it to a
    // schedule of a fault or two, one of them that crash.
    const started = performance.now()
    const r = fc.check(
      fc.property(scenarioArb, (scenario) => runScenario(scenario).stats.coordinatorCrashes.length === 0),
      { numRuns: 300, seed: 20261124 },
    )
    expect(r.failed).toBe(true)
    const [shrunk] = r.counterexample!
    console.log(`sim: shrank to ${shrunk.faults.length} fault(s) in ${r.numShrinks} steps, ${((performance.now() - started) / 1000).toFixed(1)} s: ${JSON.stringify(shrunk.faults)}`)
    expect(shrunk.faults.length).toBeLessThanOrEqual(2)
    expect(shrunk.faults.some((f) => f.kind === "crash")).toBe(true)
  })

  it("replays a seed exactly", () => {
    const a = runScenario(generateScenario(42), { timeline: true })
    const b = runScenario(generateScenario(42), { timeline: true })
    expect(a.timeline).toEqual(b.timeline)
    expect(a.timeline.length).toBeGreaterThan(50)
    expect(a.stats).toEqual(b.stats)
  })
})

describe("a coordinator crash on a clean network", () => {
  it("the next-highest server takes over within the failure-detection bound", () => {
    const worst: Array<number> = []
    for (let seed = 1; seed <= 20; seed++) {
      const base = generateScenario(seed)
      // Every server up and agreed by 10 s; then crash whoever is highest (ranked last: started last).
      const scenario: Scenario = {
        ...base,
        network: { delayMinMs: 1, delayMaxMs: 20, dropRate: 0, duplicateRate: 0 },
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
