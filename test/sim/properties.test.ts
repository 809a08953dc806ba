import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { failures } from "./support.ts"
import { runScenario } from "../../src/sim/cluster.ts"
import type { Scenario } from "../../src/sim/scenario.ts"
import { scenarioArb } from "./arbitraries.ts"

/**
 * The cluster's properties over fast-check fault schedules, which shrink a
 * failure to a small schedule and print the `bulletin sim --scenario` line
 * that replays it. (The seeded schedules are in seeded.test.ts: the two files
 * run side by side.)
 */

const runsInCi = Number(process.env.SIM_RUNS ?? 100)

describe("the cluster under generated faults", () => {
  it(`holds for ${runsInCi} fast-check schedules, shrinking any failure`, () => {
    const started = performance.now()
    fc.assert(
      fc.property(scenarioArb, (scenario: Scenario) => {
        const r = runScenario(scenario)
        if (!r.ok) throw new Error(`${failures(r)}\nreplay: bulletin sim --scenario '${JSON.stringify(scenario)}'`)
      }),
      { numRuns: runsInCi },
    )
    const seconds = (performance.now() - started) / 1000
    console.log(`sim: ${runsInCi} fast-check schedules in ${seconds.toFixed(1)} s (${(runsInCi / seconds).toFixed(1)}/s)`)
  }, 240_000)

  it("shrinks a failing schedule to a small one that names its cause", () => {
    // A claim that is false on purpose ("the first agreed coordinator never
    // crashes"): the run must find a counterexample and shrink it to a
    // schedule of a fault or two, one of them that crash.
    const started = performance.now()
    // Short runs without clients: this shows the shrinking, not the properties.
    const quick = scenarioArb.map((s) => ({ ...s, healPhaseMs: 5_000, writesPerSecond: 0, messagesPerSecond: 0, bots: 0 }))
    const r = fc.check(
      fc.property(quick, (scenario) => runScenario(scenario, { waitForClockCheck: false }).stats.coordinatorCrashes.length === 0),
      { numRuns: 300, seed: 20261124 },
    )
    expect(r.failed).toBe(true)
    const [shrunk] = r.counterexample!
    console.log(`sim: shrank to ${shrunk.faults.length} fault(s) in ${r.numShrinks} steps, ${((performance.now() - started) / 1000).toFixed(1)} s: ${JSON.stringify(shrunk.faults)}`)
    expect(shrunk.faults.length).toBeLessThanOrEqual(2)
    expect(shrunk.faults.some((f) => f.kind === "crash")).toBe(true)
  }, 120_000)
})
