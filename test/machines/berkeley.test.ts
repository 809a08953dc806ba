import fc from "fast-check"
import { createActor, SimulatedClock } from "xstate"
import { describe, expect, it } from "vitest"
import { berkeleyAdjustments, berkeleyMachine, type BerkeleyEmitted, type BerkeleyInput, type ClockSample } from "../../src/machines/berkeley.ts"

describe("berkeleyAdjustments", () => {
  const sample = (peer: string, offsetMs: number, rttMs = 10): ClockSample => ({ peer, offsetMs, rttMs })

  it("averages the coordinator's clock (offset 0) with every sample", () => {
    const r = berkeleyAdjustments("a", [sample("b", 30), sample("c", -60)], 100, 50)
    expect(r).toEqual({
      adjustments: [
        { peer: "a", offsetMs: -10 },
        { peer: "b", offsetMs: -40 },
        { peer: "c", offsetMs: 50 },
      ],
      used: 3,
      dropped: 0,
    })
  })

  it("an outlier beyond the tolerance does not vote, but is still corrected to the average", () => {
    // Median of [0, 10, 20, 5000] is 15: the 5000 ms clock is far out.
    const r = berkeleyAdjustments("a", [sample("b", 10), sample("c", 20), sample("d", 5_000)], 100, 50)
    expect(r.used).toBe(3)
    expect(r.dropped).toBe(1)
    expect(r.adjustments).toEqual([
      { peer: "a", offsetMs: 10 },
      { peer: "b", offsetMs: 0 },
      { peer: "c", offsetMs: -10 },
      { peer: "d", offsetMs: -4_990 },
    ])
  })

  it("a sample whose round trip exceeds rttMaxMs does not vote", () => {
    const r = berkeleyAdjustments("a", [sample("b", 30), sample("c", 90, 500)], 100, 50)
    expect(r.used).toBe(2)
    expect(r.dropped).toBe(1)
    expect(r.adjustments).toEqual([
      { peer: "a", offsetMs: 15 },
      { peer: "b", offsetMs: -15 },
      { peer: "c", offsetMs: -75 },
    ])
  })

  it("ignores a sample claiming to be the coordinator itself", () => {
    const r = berkeleyAdjustments("a", [sample("a", 999), sample("b", 20)], 100, 50)
    expect(r.adjustments.map((x) => x.peer)).toEqual(["a", "b"])
    expect(r.used + r.dropped).toBe(2)
  })

  it("every corrected clock lands on the same value", () => {
    const samples = [sample("b", 12), sample("c", -7), sample("d", 250), sample("e", 3, 400)]
    const r = berkeleyAdjustments("a", samples, 50, 100)
    const offsets = new Map([["a", 0], ...samples.map((s): [string, number] => [s.peer, s.offsetMs])])
    const corrected = r.adjustments.map((x) => offsets.get(x.peer)! + x.offsetMs)
    for (const v of corrected) expect(v).toBeCloseTo(corrected[0]!, 9)
    expect(corrected[0]).toBeCloseTo(5 / 3, 9) // (0 + 12 - 7) / 3: d is out, e is slow
  })

  // With an even number of clocks the median is the mean of the two middle
  // ones, which may be further than the tolerance from both; then nobody
  // agrees and the coordinator's own clock is the reference. (The committed
  // version divided 0 by 0 here and sent NaN corrections.)
  it("two clocks further apart than twice the tolerance: the coordinator's clock is the reference", () => {
    const r = berkeleyAdjustments("a", [sample("b", 1_000)], 100, 50)
    expect(r).toEqual({ adjustments: [{ peer: "a", offsetMs: 0 }, { peer: "b", offsetMs: -1_000 }], used: 1, dropped: 1 })
  })

  it("every clock near the median too slow to vote: the coordinator's clock is the reference", () => {
    const r = berkeleyAdjustments("a", [sample("b", 500, 900), sample("c", 500, 900)], 100, 50)
    expect(r).toEqual({
      adjustments: [
        { peer: "a", offsetMs: 0 },
        { peer: "b", offsetMs: -500 },
        { peer: "c", offsetMs: -500 },
      ],
      used: 1,
      dropped: 2,
    })
  })

  describe("properties", () => {
    const params = { seed: 4_711, numRuns: 300 }
    const names = fc.uniqueArray(fc.constantFrom("b", "c", "d", "e", "f", "g", "h", "i"), { maxLength: 8 })
    const samplesArb = (offset: fc.Arbitrary<number>, rtt: fc.Arbitrary<number>) =>
      names.chain((ns) => fc.tuple(...ns.map((peer) => fc.record({ peer: fc.constant(peer), offsetMs: offset, rttMs: rtt }))))

    it("used + dropped is the number of clocks (samples + the coordinator), one adjustment each", () => {
      fc.assert(
        fc.property(samplesArb(fc.integer({ min: -100_000, max: 100_000 }), fc.nat({ max: 1_000 })), fc.nat({ max: 10_000 }), fc.nat({ max: 1_000 }), (samples, tol, rtt) => {
          const r = berkeleyAdjustments("a", samples, tol, rtt)
          expect(r.used + r.dropped).toBe(samples.length + 1)
          expect(r.adjustments.map((x) => x.peer)).toEqual(["a", ...samples.map((s) => s.peer)])
        }),
        params,
      )
    })

    it("whatever the clocks, tolerance and round trips: someone votes, every correction is finite, every corrected clock coincides", () => {
      fc.assert(
        fc.property(samplesArb(fc.integer({ min: -100_000, max: 100_000 }), fc.nat({ max: 1_000 })), fc.nat({ max: 10_000 }), fc.nat({ max: 1_000 }), (samples, tol, rttMax) => {
          const r = berkeleyAdjustments("a", samples, tol, rttMax)
          expect(r.used).toBeGreaterThan(0)
          const offsetOf = new Map([["a", 0], ...samples.map((s): [string, number] => [s.peer, s.offsetMs])])
          const corrected = r.adjustments.map((x) => offsetOf.get(x.peer)! + x.offsetMs)
          for (const x of r.adjustments) expect(Number.isFinite(x.offsetMs)).toBe(true)
          for (const v of corrected) expect(Math.abs(v - corrected[0]!)).toBeLessThan(1e-6)
        }),
        params,
      )
    })

    it("with no outliers every clock votes and the corrections sum to zero", () => {
      fc.assert(
        fc.property(samplesArb(fc.integer({ min: -1_000, max: 1_000 }), fc.nat({ max: 50 })), (samples) => {
          const r = berkeleyAdjustments("a", samples, 2_000, 50)
          expect(r.dropped).toBe(0)
          const sum = r.adjustments.reduce((acc, x) => acc + x.offsetMs, 0)
          expect(Math.abs(sum)).toBeLessThan(1e-6)
        }),
        params,
      )
    })
  })
})

const input: BerkeleyInput = { self: "a", roundIntervalMs: 1_000, pollTimeoutMs: 200, roundSpacingMs: 100, toleranceMs: 100, rttMaxMs: 50 }

const start = () => {
  const clock = new SimulatedClock()
  const actor = createActor(berkeleyMachine, { input, clock })
  const log: Array<BerkeleyEmitted & { t: number }> = []
  actor.on("*", (e) => log.push({ ...e, t: clock.now() }))
  actor.start()
  const advance = (ms: number) => {
    for (let k = 0; k < ms; k++) clock.increment(1)
  }
  const value = () => actor.getSnapshot().value
  const sample = (peer: string, offsetMs: number, round = actor.getSnapshot().context.round, rttMs = 10) =>
    actor.send({ type: "SAMPLE", round, peer, offsetMs, rttMs })
  const take = () => log.splice(0, log.length)
  return { actor, clock, log, advance, value, sample, take }
}

describe("berkeley machine", () => {
  it("is inactive until LEAD: no polls, samples and SYNC_NOW ignored", () => {
    const b = start()
    b.actor.send({ type: "PEERS", peers: ["a", "b", "c"] })
    b.actor.send({ type: "SYNC_NOW" })
    b.sample("b", 10, 1)
    b.advance(5_000)
    expect(b.value()).toBe("inactive")
    expect(b.log).toEqual([])
    expect(b.actor.getSnapshot().context.peers).toEqual(["b", "c"]) // without itself
  })

  it("polls on LEAD and completes the round once every peer answered", () => {
    const b = start()
    b.actor.send({ type: "PEERS", peers: ["a", "b", "c"] })
    b.actor.send({ type: "LEAD" })
    expect(b.take()).toEqual([{ type: "poll", round: 1, peers: ["b", "c"], t: 0 }])
    expect(b.value()).toEqual({ active: "polling" })
    b.advance(20)
    b.sample("b", 30)
    expect(b.log).toEqual([])
    b.sample("c", -60)
    expect(b.value()).toEqual({ active: "resting" })
    expect(b.take()).toEqual([
      { type: "adjust", round: 1, peer: "a", offsetMs: -10, t: 20 },
      { type: "adjust", round: 1, peer: "b", offsetMs: -40, t: 20 },
      { type: "adjust", round: 1, peer: "c", offsetMs: 50, t: 20 },
      { type: "roundDone", round: 1, used: 3, dropped: 0, t: 20 },
    ])
  })

  it("a round with no peers completes at once with the coordinator alone", () => {
    const b = start()
    b.actor.send({ type: "LEAD" })
    expect(b.take().map((e) => e.type)).toEqual(["poll", "adjust", "roundDone"])
    expect(b.value()).toEqual({ active: "resting" })
  })

  it("the poll timeout completes the round with the samples it has", () => {
    const b = start()
    b.actor.send({ type: "PEERS", peers: ["b", "c"] })
    b.actor.send({ type: "LEAD" })
    b.take()
    b.sample("b", 40)
    b.advance(199)
    expect(b.log).toEqual([])
    b.advance(1)
    expect(b.take()).toEqual([
      { type: "adjust", round: 1, peer: "a", offsetMs: 20, t: 200 },
      { type: "adjust", round: 1, peer: "b", offsetMs: -20, t: 200 },
      { type: "roundDone", round: 1, used: 2, dropped: 0, t: 200 },
    ])
  })

  it("ignores samples from an old round or an unknown peer; a repeated sample replaces the earlier one", () => {
    const b = start()
    b.actor.send({ type: "PEERS", peers: ["b", "c"] })
    b.actor.send({ type: "LEAD" })
    b.advance(300) // round 1 times out at 200 with no samples; idle after the spacing, at 300
    b.advance(1_000) // the interval: round 2 at 1300
    expect(b.actor.getSnapshot().context.round).toBe(2)
    b.take()
    b.sample("b", 10, 1) // old round
    b.sample("z", 10) // unknown
    b.sample("a", 10) // itself
    expect(b.actor.getSnapshot().context.samples).toEqual([])
    b.sample("b", 10)
    b.sample("b", 50)
    expect(b.value()).toEqual({ active: "polling" })
    b.sample("c", 10)
    expect(b.take()).toEqual([
      { type: "adjust", round: 2, peer: "a", offsetMs: 20, t: 1_300 },
      { type: "adjust", round: 2, peer: "b", offsetMs: -30, t: 1_300 },
      { type: "adjust", round: 2, peer: "c", offsetMs: 10, t: 1_300 },
      { type: "roundDone", round: 2, used: 3, dropped: 0, t: 1_300 },
    ])
  })

  it("SYNC_NOW is ignored while resting and starts a round when idle", () => {
    const b = start()
    b.actor.send({ type: "PEERS", peers: ["b"] })
    b.actor.send({ type: "LEAD" })
    b.sample("b", 0)
    b.take()
    b.actor.send({ type: "SYNC_NOW" })
    expect(b.value()).toEqual({ active: "resting" })
    b.advance(99)
    b.actor.send({ type: "SYNC_NOW" })
    expect(b.log).toEqual([])
    b.advance(1)
    expect(b.value()).toEqual({ active: "idle" })
    b.actor.send({ type: "SYNC_NOW" })
    expect(b.value()).toEqual({ active: "polling" })
    expect(b.take()).toEqual([{ type: "poll", round: 2, peers: ["b"], t: 100 }])
  })

  it("roundInterval after the spacing starts the next round", () => {
    const b = start()
    b.actor.send({ type: "PEERS", peers: ["b"] })
    b.actor.send({ type: "LEAD" })
    b.sample("b", 0)
    b.advance(100 + 999)
    expect(b.log.filter((e) => e.type === "poll").map((e) => e.t)).toEqual([0])
    b.advance(1)
    expect(b.log.filter((e) => e.type === "poll").map((e) => [e.round, e.t])).toEqual([
      [1, 0],
      [2, 1_100],
    ])
  })

  it("FOLLOW returns to inactive and stops polling; LEAD again starts a new round", () => {
    const b = start()
    b.actor.send({ type: "PEERS", peers: ["b"] })
    b.actor.send({ type: "LEAD" })
    b.advance(50)
    b.actor.send({ type: "FOLLOW" })
    expect(b.value()).toBe("inactive")
    b.take()
    b.advance(10_000)
    b.sample("b", 0, 1)
    expect(b.log).toEqual([])
    b.actor.send({ type: "LEAD" })
    expect(b.take()).toEqual([{ type: "poll", round: 2, peers: ["b"], t: 10_050 }])
  })
})
