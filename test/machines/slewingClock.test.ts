import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { SlewingClock } from "../../src/machines/slewingClock.ts"

describe("SlewingClock", () => {
  it("never runs backwards, whatever the raw clock and the corrections do", () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant("tick" as const), ms: fc.integer({ min: -5_000, max: 5_000 }) }),
      fc.record({ kind: fc.constant("adjust" as const), ms: fc.integer({ min: -20_000, max: 20_000 }) }),
    )
    fc.assert(
      fc.property(fc.array(step, { maxLength: 200 }), fc.double({ min: 0.05, max: 0.95, noNaN: true }), (steps, rate) => {
        const c = new SlewingClock({ slewRate: rate, stepThresholdMs: 5_000 })
        let raw = 1_000_000
        let last = c.now(raw)
        for (const s of steps) {
          if (s.kind === "tick") raw += s.ms
          else c.adjust(s.ms, raw)
          const t = c.now(raw)
          expect(t).toBeGreaterThanOrEqual(last)
          last = t
        }
      }),
    )
  })

  it("applies a correction fully, at the slew rate", () => {
    const c = new SlewingClock({ slewRate: 0.5, stepThresholdMs: 5_000 })
    c.now(0)
    c.adjust(-100, 0)
    expect(c.now(100)).toBe(50) // ran at half speed
    expect(c.now(200)).toBe(100)
    expect(c.now(300)).toBe(200) // done: back to full speed, 100 ms behind raw
    c.adjust(40, 300)
    expect(c.now(400)).toBe(340)
    expect(c.offsetMs).toBe(-60)
  })

  it("steps large forward corrections at once", () => {
    const c = new SlewingClock({ slewRate: 0.5, stepThresholdMs: 1_000 })
    c.now(0)
    c.adjust(60_000, 0)
    expect(c.now(1)).toBe(60_001)
  })
})

describe("SlewingClock and raw steps", () => {
  it("absorbs a backward step of the raw clock instead of freezing", () => {
    const c = new SlewingClock({ slewRate: 0.5, stepThresholdMs: 5_000 })
    expect(c.now(10_000)).toBe(10_000)
    expect(c.now(7_000)).toBe(10_000) // raw jumped back 3 s: adjusted stays
    expect(c.now(7_100)).toBe(10_100) // and keeps running from there
    expect(c.offsetMs).toBe(3_000)
  })
})
