import { describe, expect, it } from "vitest"
import { runScenario } from "../../src/sim/cluster.ts"
import { generateScenario } from "../../src/sim/scenario.ts"
import { failures } from "./support.ts"

/**
 * An intruder on the cluster's network (a host without the cluster's key
 * posing as a server: rank squatting, elections, clock corrections, op-log
 * pulls, a rogue back end, forged replication and announcements). Secured,
 * as by default, it gets nowhere and every property holds; in open mode the
 * same schedules break the cluster, which is what the key is for.
 */
describe("an intruder in the simulator", () => {
  it("is kept out of a secured cluster: every property holds", () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const r = runScenario({ ...generateScenario(seed), intruders: 1 })
      expect(r.ok, failures(r)).toBe(true)
      expect(r.checks.find((c) => c.name.startsWith("intruders kept out"))!.detail).toMatch(/^\d+ connections refused/)
    }
  })

  it("breaks the same cluster in open mode (what the key is for)", () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const r = runScenario({ ...generateScenario(seed), intruders: 1, open: true })
      expect(r.ok).toBe(false)
      // Its forged op far ahead in s1's sequence leaves a hole no replica can fill.
      expect(failures(r)).toMatch(/replication position converged|acknowledged write|clocks within the bound|coordinator/)
    }
  })
})
