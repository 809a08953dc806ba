import type { SimResult } from "../../src/sim/cluster.ts"

/** The failed checks of a run, one per line, for an assertion's message. */
export const failures = (r: SimResult) =>
  r.checks
    .filter((c) => !c.ok)
    .map((c) => `${c.name}: ${c.detail}`)
    .join("\n")
