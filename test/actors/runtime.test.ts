import { Clock, Effect } from "effect"
import { describe, expect, it } from "vitest"
import { supervised, withClockSkew } from "../../src/actors/runtime.ts"

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

describe("withClockSkew (server --clock-skew)", () => {
  it("shifts wall-clock readings by the skew, leaves monotonic time alone", async () => {
    const read = Effect.gen(function* () {
      const clock = yield* Clock.Clock
      return { ms: yield* Clock.currentTimeMillis, unsafe: clock.currentTimeMillisUnsafe(), ns: yield* Clock.currentTimeNanos, mono: clock.monotonicTimeNanosUnsafe() }
    })
    const [plain, ahead, behind] = await Promise.all([Effect.runPromise(read), Effect.runPromise(withClockSkew(650, read)), Effect.runPromise(withClockSkew(-400, read))])
    // The three reads run within a few ms of each other; 100 ms of slack for a busy machine.
    const near = (x: number, y: number) => expect(Math.abs(x - y)).toBeLessThan(100)
    near(ahead.ms - plain.ms, 650)
    near(plain.ms - behind.ms, 400)
    near(ahead.unsafe, ahead.ms)
    near(Number(ahead.ns / 1_000_000n), ahead.ms)
    near(Number((ahead.mono - plain.mono) / 1_000_000n), 0)
  })

  it("changes nothing at 0", async () => {
    const e = Effect.succeed(1)
    expect(withClockSkew(0, e)).toBe(e)
  })
})
