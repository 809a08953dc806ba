import { Duration, Effect, Fiber, Queue, type Scope } from "effect"
import { describe, expect, it } from "vitest"
import { Prng } from "../../src/sim/prng.ts"
import type { Timer } from "../../src/sim/scheduler.ts"
import { World } from "../../src/sim/world.ts"
import { type LinkParams, SimNetwork } from "../../src/transport/simulated.ts"
import { Transport, type TransportLimits, defaultTransportLimits } from "../../src/transport/Transport.ts"

/** The simulated network's promises, each crossed on purpose: what the simulator's runs rely on. */
const setup = (params: Partial<LinkParams> = {}, limits: Partial<TransportLimits> = {}) => {
  const world = new World()
  const prng = new Prng(7)
  const net = new SimNetwork({
    timers: { now: () => world.now, after: (ms, fn) => world.sched.after(ms, fn), cancel: (t) => world.sched.cancel(t as Timer) },
    random: () => prng.next(),
    params: { delayMinMs: 1, delayMaxMs: 40, dropRate: 0, duplicateRate: 0, reorderRate: 0, ...params },
    limits: { ...defaultTransportLimits, ...limits },
  })
  /** Runs a role on a host of its own. */
  const on = <A, E>(host: string, program: Effect.Effect<A, E, Transport | Scope.Scope>) => {
    const h = net.boot(host)
    return world.spawn(Effect.scoped(program).pipe(Effect.provideService(Transport, net.transport(h))) as Effect.Effect<A, E>, { clock: world.clock({ skewMs: 0, driftPpm: 0, stepMs: 0 }), seed: 1, log: () => {} })
  }
  const run = (ms: number) => world.sched.runUntil(world.now + ms, 5_000_000)
  return { world, net, on, run }
}

const text = (s: string) => new TextEncoder().encode(s)
const str = (b: Uint8Array) => new TextDecoder().decode(b)

const proxyAndBroker = (s: ReturnType<typeof setup>) => {
  s.on("proxy", Effect.flatMap(Transport, (t) => t.proxy("tcp://proxy:5557", "tcp://proxy:5558")))
  s.on("broker", Effect.flatMap(Transport, (t) => t.broker("tcp://broker:5555", "tcp://broker:5556")))
}

/** A subscriber on `host` that writes down what it receives. */
const collector = (s: ReturnType<typeof setup>, host: string, topic: string) => {
  const got: Array<string> = []
  s.on(
    host,
    Effect.gen(function* () {
      const sub = yield* (yield* Transport).subscriber("tcp://proxy:5558", [topic])
      for (;;) got.push(str((yield* Queue.take(sub.messages)).payload))
    }),
  )
  return got
}

const publishing = (s: ReturnType<typeof setup>, host: string, topic: string, count: number, everyMs: number, startMs = 0) =>
  s.on(
    host,
    Effect.gen(function* () {
      const pub = yield* (yield* Transport).publisher("tcp://proxy:5557")
      yield* Effect.sleep(Duration.millis(startMs))
      for (let i = 1; i <= count; i++) {
        yield* pub.publish(topic, text(String(i)))
        yield* Effect.sleep(Duration.millis(everyMs))
      }
      return yield* Effect.never
    }),
  )

describe("the simulated network", () => {
  it("keeps each connection FIFO however the delays fall", () => {
    const s = setup({ delayMinMs: 1, delayMaxMs: 50 })
    proxyAndBroker(s)
    const got = collector(s, "sub", "t")
    publishing(s, "pub", "t", 300, 1, 500)
    s.run(5_000)
    expect(got).toEqual(Array.from({ length: 300 }, (_, i) => String(i + 1)))
  })

  it("reorders only as a harsher fault, when asked to", () => {
    const s = setup({ delayMinMs: 1, delayMaxMs: 50, reorderRate: 0.5 })
    proxyAndBroker(s)
    const got = collector(s, "sub", "t")
    publishing(s, "pub", "t", 300, 1, 500)
    s.run(5_000)
    expect(got).toHaveLength(300)
    expect(got).not.toEqual([...got].sort((a, b) => Number(a) - Number(b)))
  })

  it("a late subscriber misses what was published before its subscription reached the publisher (slow joiner)", () => {
    const s = setup({ delayMinMs: 5, delayMaxMs: 10 })
    proxyAndBroker(s)
    publishing(s, "pub", "t", 100, 10, 100)
    s.run(400)
    const got = collector(s, "sub", "t")
    s.run(3_000)
    expect(got.length).toBeGreaterThan(50)
    expect(Number(got[0])).toBeGreaterThan(30)
    expect(got).toEqual(Array.from({ length: got.length }, (_, i) => String(Number(got[0]) + i)))
  })

  it("a short partition stalls a connection and loses nothing; a long one drops it, and what was in flight with it", () => {
    for (const [cutMs, lost] of [[1_500, false], [6_000, true]] as const) {
      const s = setup({ delayMinMs: 1, delayMaxMs: 5 })
      proxyAndBroker(s)
      const got = collector(s, "sub", "t")
      publishing(s, "pub", "t", 1_000, 10, 500)
      s.run(1_000)
      s.net.cut("proxy", "sub")
      s.run(cutMs)
      s.net.heal()
      s.run(12_000)
      const numbers = got.map(Number)
      // In order either way; the long cut leaves a hole, and the connection came back.
      expect(numbers).toEqual([...numbers].sort((a, b) => a - b))
      expect(numbers.at(-1)).toBe(1_000)
      if (lost) {
        expect(numbers.length).toBeLessThan(1_000 - 300)
        expect(s.net.counters.get("connections dropped by heartbeat timeout")).toBeGreaterThan(0)
      } else expect(numbers).toHaveLength(1_000)
    }
  })

  it("the broker hands requests round-robin to connected servers only", () => {
    const s = setup({ delayMinMs: 1, delayMaxMs: 3 })
    proxyAndBroker(s)
    const served = new Map<string, number>()
    const server = (name: string) =>
      s.on(
        name,
        Effect.gen(function* () {
          const replier = yield* (yield* Transport).replier("tcp://broker:5556", "connect")
          for (;;) {
            const req = yield* Queue.take(replier.requests)
            served.set(name, (served.get(name) ?? 0) + 1)
            yield* req.reply(text(name))
          }
        }),
      )
    for (const n of ["s1", "s2", "s3"]) server(n)
    const replies: Array<string> = []
    s.on(
      "client",
      Effect.gen(function* () {
        const req = yield* (yield* Transport).requester("tcp://broker:5555")
        yield* Effect.sleep(Duration.millis(200))
        for (let i = 0; i < 300; i++) {
          const r = yield* Effect.result(req.request(text(`r${i}`), 500))
          replies.push(r._tag === "Success" ? str(r.success) : "timeout")
          if (i === 149) s.net.crash("s3")
        }
      }),
    )
    s.run(20_000)
    expect(replies).toHaveLength(300)
    const first = replies.slice(0, 150)
    for (const n of ["s1", "s2", "s3"]) expect(first.filter((r) => r === n).length).toBe(50)
    // After the crash at most the request already on its way to s3 is lost; then only s1 and s2.
    const after = replies.slice(152)
    expect(after.every((r) => r === "s1" || r === "s2")).toBe(true)
    expect(replies.filter((r) => r === "timeout").length).toBeLessThanOrEqual(1)
  })

  it("a requester carries one request at a time and, after a timeout, never takes the late reply for the next answer", () => {
    const s = setup({ delayMinMs: 1, delayMaxMs: 2 })
    s.on(
      "slow",
      Effect.gen(function* () {
        const replier = yield* (yield* Transport).replier("tcp://slow:5560", "bind")
        for (;;) {
          const req = yield* Queue.take(replier.requests)
          // The first request is answered late, after the requester gave up on it.
          if (str(req.frame) === "first") yield* Effect.sleep(Duration.millis(300))
          yield* req.reply(text(`answer to ${str(req.frame)}`))
        }
      }),
    )
    const out: Array<string> = []
    s.on(
      "asker",
      Effect.gen(function* () {
        const req = yield* (yield* Transport).requester("tcp://slow:5560")
        const a = yield* Effect.result(req.request(text("first"), 100))
        out.push(a._tag === "Success" ? str(a.success) : a.failure.reason)
        const b = yield* Effect.result(req.request(text("second"), 1_000))
        out.push(b._tag === "Success" ? str(b.success) : b.failure.reason)
        // Concurrent requests queue behind each other, each answered in turn.
        const all = yield* Effect.all(["x", "y", "z"].map((t) => req.request(text(t), 1_000)), { concurrency: "unbounded" })
        out.push(...all.map(str))
      }),
    )
    s.run(5_000)
    expect(out).toEqual(["Timeout", "answer to second", "answer to x", "answer to y", "answer to z"])
  })

  it("refuses requests past the requester's queue limit at once instead of queueing for ever", () => {
    const s = setup({}, { requestQueueMessages: 2 })
    const outcomes: Array<string> = []
    s.on(
      "asker",
      Effect.gen(function* () {
        const req = yield* (yield* Transport).requester("tcp://nobody:5560")
        const fibers = yield* Effect.all(
          Array.from({ length: 5 }, () => Effect.forkChild(Effect.result(req.request(text("?"), 200)))),
        )
        for (const f of fibers) {
          const r = yield* Fiber.join(f)
          outcomes.push(r._tag === "Success" ? "reply" : r.failure.reason)
        }
      }),
    )
    s.run(3_000)
    expect(outcomes.filter((o) => o === "Overloaded")).toHaveLength(3)
    expect(outcomes.filter((o) => o === "Timeout")).toHaveLength(2)
    expect(s.net.highs().every((h) => h.high <= h.limit)).toBe(true)
  })

  it("the proxy drops at a subscriber's high-water mark and stalls nobody else", () => {
    const s = setup({ delayMinMs: 1, delayMaxMs: 2 }, { highWaterMarkMessages: 10 })
    proxyAndBroker(s)
    const slow = collector(s, "slow", "t")
    const fast = collector(s, "fast", "t")
    publishing(s, "pub", "t", 500, 1, 500)
    s.run(400)
    s.net.cut("proxy", "slow")
    s.run(1_500)
    s.net.heal()
    s.run(3_000)
    expect(fast).toHaveLength(500)
    // The pipe to the cut-off subscriber held its high-water mark (10 x 10 at the proxy); the rest was dropped.
    expect(slow.length).toBeLessThan(500)
    expect(s.net.counters.get("publications dropped at a subscriber's high-water mark")).toBeGreaterThan(0)
    expect(s.net.highs().every((h) => h.high <= h.limit)).toBe(true)
  })

  it("a crashed host's connections close, and its peers dial again once it is back", () => {
    const s = setup({ delayMinMs: 1, delayMaxMs: 3 })
    proxyAndBroker(s)
    const got = collector(s, "sub", "t")
    publishing(s, "pub", "t", 300, 10, 200)
    s.run(1_000)
    s.net.crash("proxy")
    s.run(500)
    s.on("proxy", Effect.flatMap(Transport, (t) => t.proxy("tcp://proxy:5557", "tcp://proxy:5558")))
    s.run(4_000)
    const numbers = got.map(Number)
    expect(numbers.at(-1)).toBe(300)
    expect(numbers.length).toBeLessThan(300)
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b))
  })
})
