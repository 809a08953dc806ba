import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import { supervised } from "../../src/actors/runtime.ts"

const policy = { restartBackoffMs: 1, restartBackoffMaxMs: 4, restartsMax: 5 }

describe("supervised loops", () => {
  it("restart after a failure and go on", async () => {
    let runs = 0
    const loop = Effect.suspend(() => (++runs < 4 ? Effect.fail(new Error(`boom ${runs}`)) : Effect.succeed("done")))
    expect(await Effect.runPromise(supervised("test", loop, policy))).toBe("done")
    expect(runs).toBe(4)
  })

  it("restart after a defect too (a thrown exception)", async () => {
    let runs = 0
    const loop = Effect.sync(() => {
      if (++runs < 3) throw new Error("defect")
      return runs
    })
    expect(await Effect.runPromise(supervised("test", loop, policy))).toBe(3)
  })

  it("give up after the restart budget, failing the role", async () => {
    let runs = 0
    const loop = Effect.suspend(() => { runs++; return Effect.fail(new Error("always")) })
    const exit = await Effect.runPromiseExit(supervised("test", loop, policy))
    expect(exit._tag).toBe("Failure")
    expect(runs).toBe(policy.restartsMax + 1)
  })
})
