import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { LamportClock } from "../../src/machines/lamport.ts"

describe("Lamport clock", () => {
  it("a receive never goes backwards and a send is always above every value seen", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constant("send" as const), fc.option(fc.nat({ max: 1e6 }), { nil: undefined }))), (events) => {
        const c = new LamportClock()
        let seen = 0
        let last = 0
        for (const e of events) {
          if (e === "send") {
            const v = c.tick()
            expect(v).toBeGreaterThan(seen)
            expect(v).toBeGreaterThan(last)
            last = v
            seen = Math.max(seen, v)
          } else {
            const before = c.current
            c.observe(e)
            expect(c.current).toBeGreaterThanOrEqual(before)
            if (e !== undefined) seen = Math.max(seen, e)
          }
        }
      }),
    )
  })

  it("happens-before implies a smaller clock across processes", () => {
    const a = new LamportClock()
    const b = new LamportClock(100)
    const m1 = b.tick()
    a.observe(m1)
    const m2 = a.tick()
    expect(m2).toBeGreaterThan(m1)
  })

  it("ignores hostile values", () => {
    const c = new LamportClock(3)
    c.observe(Number.NaN)
    c.observe(-5)
    c.observe(1.5)
    expect(c.current).toBe(3)
    expect(() => new LamportClock(-1)).toThrow()
  })
})
