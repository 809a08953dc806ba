import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { CoordinationNode, type TraceEvent, defaultCoordinationConfig } from "../../src/actors/coordination.ts"
import { LamportClock } from "../../src/machines/lamport.ts"
import { decode, encode } from "../../src/protocol/codec.ts"
import { encodeEnvelope } from "../../src/protocol/messages.ts"
import { Scheduler } from "../../src/sim/scheduler.ts"

/**
 * The coordination node alone, with a hand-driven network: what it sends,
 * how it answers its peer port, and that bad input or a failing handler
 * never stops it.
 */
interface Sent {
  readonly to: string
  readonly service: string
  readonly data: Record<string, unknown>
  readonly done: (reply: Uint8Array | undefined) => void
}

const epoch = 1_790_000_000_000

const harness = (options: { throwOnRequest?: boolean } = {}) => {
  const sched = new Scheduler()
  const sent: Array<Sent> = []
  const published: Array<{ topic: string; data: Record<string, unknown> }> = []
  const traces: Array<TraceEvent> = []
  const lamport = new LamportClock()
  const body = (frame: Uint8Array) => decode(frame) as { ok: true; value: { service: string; data: Record<string, unknown> } }
  const node = new CoordinationNode(defaultCoordinationConfig("b", "tcp://ref:5559", "tcp://b:5560"), {
    rawNow: () => epoch + sched.now,
    clock: sched.xstateClock(),
    lamport,
    trace: (e) => traces.push(e),
    net: {
      request: (to, frame, _timeoutMs, _lane, done) => {
        if (options.throwOnRequest) throw new Error("socket exploded")
        const { service, data } = body(frame).value
        sent.push({ to, service, data, done })
      },
      publish: (topic, frame) => published.push({ topic, data: body(frame).value.data }),
    },
  })
  const reply = (s: Sent, data: Record<string, unknown>) => s.done(encodeEnvelope(s.service, data, { clock: 1, timestampMs: epoch }))
  /** Answers every pending request to the reference (rank 2, peers a and c) and drops the rest. */
  const serveReference = (peers = [{ name: "a", rank: 1, addr: "tcp://a:5560" }, { name: "b", rank: 2, addr: "tcp://b:5560" }, { name: "c", rank: 3, addr: "tcp://c:5560" }]) => {
    for (const s of sent.splice(0)) {
      if (s.to !== "tcp://ref:5559") continue
      if (s.service === "rank") reply(s, { status: "OK", rank: 2 })
      if (s.service === "heartbeat") reply(s, { status: "OK" })
      if (s.service === "list") reply(s, { status: "OK", list: peers })
    }
  }
  const ask = (service: string, data: Record<string, unknown> = {}, clock = 1) => body(node.handlePeerRequest(encodeEnvelope(service, data, { clock, timestampMs: epoch }))).value
  return { sched, sent, published, traces, node, reply, serveReference, ask, lamport }
}

describe("the coordination node", () => {
  it("registers, lists its peers, and asks the higher one in an election", () => {
    const h = harness()
    h.node.start()
    expect(h.sent.map((s) => [s.to, s.service, s.data.user, s.data.addr])).toEqual([["tcp://ref:5559", "rank", "b", "tcp://b:5560"]])
    h.serveReference()
    h.serveReference() // the list that followed the rank
    expect(h.node.snapshot().peers).toEqual([{ name: "a", rank: 1 }, { name: "c", rank: 3 }])
    const election = h.sent.find((s) => s.service === "election")!
    expect(election.to).toBe("tcp://c:5560")
    expect(election.data).toMatchObject({ from: "b", rank: 2, term: { epoch: 1, rank: 2 } })
    // c never answers: after the election timeout b leads and announces on `servers`.
    h.sched.runUntil(h.sched.now + 1_100, 10_000)
    expect(h.node.isCoordinator).toBe(true)
    expect(h.published.at(-1)).toMatchObject({ topic: "servers", data: { coordinator: "b", rank: 2, term: { epoch: 1, rank: 2 } } })
  })

  it("sends a new coordinator's first announcement again after 250 ms and 1 s, then every announce interval", () => {
    const h = harness()
    h.node.start()
    h.serveReference()
    h.serveReference()
    h.sched.runUntil(h.sched.now + 1_100, 10_000)
    expect(h.node.isCoordinator).toBe(true)
    const claimedAt = h.sched.now - 100
    const count = () => h.published.filter((p) => p.topic === "servers").length
    const first = count()
    h.sched.runUntil(claimedAt + 300, 10_000)
    expect(count()).toBe(first + 1)
    h.sched.runUntil(claimedAt + 1_050, 10_000)
    expect(count()).toBe(first + 2)
    // The regular re-announce (every 2 s) is not repeated.
    h.sched.runUntil(claimedAt + 3_500, 10_000)
    expect(count()).toBe(first + 3)
    expect(new Set(h.published.filter((p) => p.topic === "servers").map((p) => JSON.stringify(p.data.term))).size).toBe(1)
  })

  it("answers election with OK and a clock request with its adjusted time, which slews and never goes back", () => {
    const h = harness()
    h.node.start()
    h.serveReference()
    h.serveReference()
    const ok = h.ask("election", { from: "a", rank: 1 })
    expect(ok.data.election).toBe("OK")
    const t0 = h.ask("clock").data.time as number
    expect(t0).toBe(Math.floor(epoch + h.sched.now))
    expect(h.ask("clockAdjust", { offsetMs: -100, round: 1, from: "c" }).data.status).toBe("OK")
    let last = t0
    const seen: Array<number> = []
    for (let i = 0; i < 30; i++) {
      h.sched.runUntil(h.sched.now + 10, 10_000)
      const t = h.ask("clock").data.time as number
      expect(t).toBeGreaterThanOrEqual(last)
      seen.push(t - t0)
      last = t
    }
    // Slewed at half speed: 100 ms of real time is 50 ms of adjusted time
    // until the 100 ms correction is used up (after 200 ms), then full speed.
    expect(seen[9]).toBe(50)
    expect(seen[19]).toBe(100)
    expect(seen[29]).toBe(200)
  })

  it("answers clock with integer ms even while slewing (found by the Python interop client)", () => {
    const h = harness()
    h.node.start()
    h.serveReference()
    h.serveReference()
    expect(h.ask("clockAdjust", { offsetMs: -100, round: 1, from: "c" }).data.status).toBe("OK")
    h.sched.runUntil(h.sched.now + 3, 10_000) // 3 ms at half speed: 1.5 ms of adjusted time
    expect(h.node.now() % 1).not.toBe(0)
    const t = h.ask("clock").data.time as number
    expect(Number.isInteger(t)).toBe(true)
  })

  it("applies one round's offset once, and refuses a stale coordinator's with the term it follows", () => {
    const h = harness()
    h.node.start()
    h.serveReference()
    h.serveReference()
    h.node.handleAnnouncement(encodeEnvelope("election", { coordinator: "c", rank: 3, term: { epoch: 4, rank: 3 } }, { clock: 9, timestampMs: epoch }))
    expect(h.node.coordinator?.name).toBe("c")
    const adjust = { offsetMs: 50, round: 7, from: "c", term: { epoch: 4, rank: 3 } }
    h.ask("clockAdjust", adjust)
    h.ask("clockAdjust", adjust) // a duplicate delivery
    expect(h.node.clock.offsetMs).toBe(50)
    const stale = h.ask("clockAdjust", { offsetMs: 999, round: 1, from: "a", term: { epoch: 2, rank: 1 } }).data
    expect(stale.status).toBe("erro")
    expect(stale.term).toEqual({ epoch: 4, rank: 3 })
    expect(h.node.clock.offsetMs).toBe(50)
  })

  it("asks the coordinator for a Berkeley round every 10 messages it handles", () => {
    const h = harness()
    h.node.start()
    h.serveReference()
    h.serveReference()
    h.node.handleAnnouncement(encodeEnvelope("election", { coordinator: "c", rank: 3, term: { epoch: 4, rank: 3 } }, { clock: 9, timestampMs: epoch }))
    h.sent.splice(0)
    for (let i = 0; i < 25; i++) h.node.messageHandled()
    expect(h.sent.filter((s) => s.service === "sync").map((s) => s.to)).toEqual(["tcp://c:5560", "tcp://c:5560"])
  })

  it("answers every malformed peer request with an error and keeps serving", () => {
    const h = harness()
    h.node.start()
    const frames = [
      new Uint8Array([0xc1, 0x00]),
      encode("just a string"),
      encode({ service: "clockAdjust", data: { offsetMs: "soon" } }),
      encode({ service: "clockAdjust", data: { offsetMs: 1e12 } }),
      encode({ service: "election", data: { term: { epoch: -1, rank: 0 } } }),
      encode({ service: "reboot", data: {} }),
      new Uint8Array(100_000),
    ]
    for (const frame of frames) {
      const r = decode(h.node.handlePeerRequest(frame)) as { ok: boolean; value: { data: { status: string; description: string } } }
      expect(r.ok).toBe(true)
      expect(r.value.data.status).toBe("erro")
      expect(r.value.data.description.length).toBeGreaterThan(5)
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expect(decode(h.node.handlePeerRequest(bytes)).ok).toBe(true)
      }),
    )
    expect(h.node.clock.offsetMs).toBe(0)
    expect(typeof h.ask("clock").data.time).toBe("number")
  })

  it("stamps every reply with a Lamport clock above the request's", () => {
    const h = harness()
    h.node.start()
    const r = h.ask("clock", {}, 500)
    expect(r.data.clock).toBe(501)
  })

  it("survives a network that throws: the error is reported, the node goes on", () => {
    const h = harness({ throwOnRequest: true })
    h.node.start()
    h.sched.runUntil(5_000, 10_000)
    const errors = h.traces.filter((e) => e.kind === "error")
    // Every registration attempt failed and was retried at its own pace (timeout + retry interval), not in a hot loop.
    expect(errors.length).toBeGreaterThanOrEqual(2)
    expect(errors.length).toBeLessThanOrEqual(4)
    expect(errors[0]).toMatchObject({ where: "request rank to tcp://ref:5559", message: "socket exploded" })
    expect(typeof h.ask("clock").data.time).toBe("number")
  })

  it("refuses terms, ranks and clock corrections outside the protocol's bounds (issue 13)", () => {
    const h = harness()
    h.node.start()
    h.serveReference()
    h.sched.runUntil(100, 10_000)
    // A term of 2^53 - 1 once gave three coordinators (epoch + 1 stops counting there).
    for (const data of [{ from: "a", rank: 1, term: { epoch: Number.MAX_SAFE_INTEGER, rank: 1 } }, { from: "a", rank: 5_000 }, { from: "a", rank: 1, term: { epoch: 2 ** 51, rank: 1 } }]) {
      const r = h.ask("election", data)
      expect(r.data.status).toBe("erro")
    }
    // One forged clockAdjust once moved a coordinator's clock by a day.
    const day = h.ask("clockAdjust", { offsetMs: 86_400_000, round: 1, from: "c" })
    expect(day.data.status).toBe("erro")
    expect(String(day.data.description)).toMatch(/offsetMs/)
    expect(h.node.clock.offsetMs).toBe(0)
    // An announcement with an impossible term is ignored: nobody follows it.
    h.node.handleAnnouncement(encodeEnvelope("election", { coordinator: "mallory", rank: 3, term: { epoch: 2 ** 52, rank: 3 } }, { clock: 9, timestampMs: epoch }))
    expect(h.node.coordinator?.name).not.toBe("mallory")
    expect(h.node.snapshot().term.epoch).toBeLessThanOrEqual(2 ** 50)
  })
})
