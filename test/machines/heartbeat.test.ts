import { createActor, initialTransition, SimulatedClock, transition, type ExecutableActionObject } from "xstate"
import { describe, expect, it } from "vitest"
import { heartbeatMachine, type HeartbeatEmitted, type HeartbeatInput } from "../../src/machines/heartbeat.ts"

const input: HeartbeatInput = { intervalMs: 100, livenessMax: 3 }

// The pure API returns the actions to execute; emitted intents appear as
// "xstate.emit" actions and `after` timers as delayed "xstate.raise" actions
// (neither type is part of the declared action union, hence the widening).
const emitted = (actions: ReadonlyArray<ExecutableActionObject>) =>
  actions.flatMap((a) => (a.type === "xstate.emit" ? [(a.params as { event: HeartbeatEmitted }).event.type] : []))
const timers = (actions: ReadonlyArray<ExecutableActionObject>) =>
  actions.flatMap((a) => {
    const p = a.params as { event?: { type: string }; delay?: number }
    return a.type === "xstate.raise" && p.delay !== undefined ? [{ event: p.event!.type, delay: p.delay }] : []
  })

const intervalUp = { type: "xstate.after.interval.heartbeat.up" } as never
const intervalProbing = { type: "xstate.after.interval.heartbeat.down.probing" } as never

/** An actor on a simulated clock; `advance` moves time 1 ms at a time so re-armed timers fire too. */
const start = (i: HeartbeatInput = input) => {
  const clock = new SimulatedClock()
  const log: Array<{ t: number; type: HeartbeatEmitted["type"] }> = []
  const actor = createActor(heartbeatMachine, { input: i, clock })
  actor.on("*", (e) => log.push({ t: clock.now(), type: e.type }))
  actor.start()
  const advance = (ms: number) => {
    for (let k = 0; k < ms; k++) clock.increment(1)
  }
  const of = (type: HeartbeatEmitted["type"]) => log.filter((e) => e.type === type).map((e) => e.t)
  return { actor, clock, log, advance, of }
}

describe("heartbeat machine (pure transitions)", () => {
  it("starts up with full liveness, pings and arms the interval", () => {
    const [s, actions] = initialTransition(heartbeatMachine, input)
    expect(s.value).toBe("up")
    expect(s.context).toMatchObject({ liveness: 3, answered: false })
    expect(emitted(actions)).toEqual(["ping"])
    expect(timers(actions)).toEqual([{ event: "xstate.after.interval.heartbeat.up", delay: 100 }])
  })

  it("a PONG only notes the answer; the interval then refills liveness and pings again", () => {
    let [s] = initialTransition(heartbeatMachine, input)
    ;[s] = transition(heartbeatMachine, s, intervalUp) // one silent interval
    expect(s.context.liveness).toBe(2)
    const [answered, onPong] = transition(heartbeatMachine, s, { type: "PONG" })
    expect(answered.context.answered).toBe(true)
    expect(emitted(onPong)).toEqual([])
    const [refilled, actions] = transition(heartbeatMachine, answered, intervalUp)
    expect(refilled.value).toBe("up")
    expect(refilled.context).toMatchObject({ liveness: 3, answered: false })
    expect(emitted(actions)).toEqual(["ping"])
    expect(timers(actions)).toEqual([{ event: "xstate.after.interval.heartbeat.up", delay: 100 }])
  })

  it("each silent interval costs one unit; the last one goes down and reports it", () => {
    let [s] = initialTransition(heartbeatMachine, input)
    const seen: string[][] = []
    for (let k = 0; k < 3; k++) {
      const [next, actions] = transition(heartbeatMachine, s, intervalUp)
      seen.push(emitted(actions))
      s = next
    }
    expect(seen).toEqual([["ping"], ["ping"], ["down", "ping"]])
    expect(s.value).toEqual({ down: "probing" })
    expect(s.context.liveness).toBe(0)
    // Probing keeps pinging, never reports down again.
    const [probing, actions] = transition(heartbeatMachine, s, intervalProbing)
    expect(probing.value).toEqual({ down: "probing" })
    expect(emitted(actions)).toEqual(["ping"])
    expect(timers(actions)).toEqual([{ event: "xstate.after.interval.heartbeat.down.probing", delay: 100 }])
  })

  it("a PONG while down comes back up at once: reports up, refills and pings", () => {
    let [s] = initialTransition(heartbeatMachine, { intervalMs: 50, livenessMax: 1 })
    ;[s] = transition(heartbeatMachine, s, intervalUp)
    expect(s.value).toEqual({ down: "probing" })
    const [up, actions] = transition(heartbeatMachine, s, { type: "PONG" })
    expect(up.value).toBe("up")
    expect(up.context).toMatchObject({ liveness: 1, answered: false })
    expect(emitted(actions)).toEqual(["up", "ping"])
    expect(timers(actions)).toEqual([{ event: "xstate.after.interval.heartbeat.up", delay: 50 }])
  })
})

describe("heartbeat machine (actor on a simulated clock)", () => {
  it("pings every interval", () => {
    const h = start()
    h.advance(250)
    expect(h.of("ping")).toEqual([0, 100, 200])
  })

  it("goes down after livenessMax silent intervals and reports it once", () => {
    const h = start()
    h.advance(299)
    expect(h.actor.getSnapshot().value).toBe("up")
    h.advance(1)
    expect(h.actor.getSnapshot().value).toEqual({ down: "probing" })
    h.advance(1_000)
    expect(h.of("down")).toEqual([300])
    expect(h.of("up")).toEqual([])
    // Still probing every interval while down.
    expect(h.of("ping")).toEqual([0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000, 1100, 1200, 1300])
  })

  it("stays up while every interval gets a pong", () => {
    const h = start()
    for (let k = 0; k < 20; k++) {
      h.advance(50)
      h.actor.send({ type: "PONG" })
      h.advance(50)
    }
    expect(h.actor.getSnapshot().value).toBe("up")
    expect(h.actor.getSnapshot().context.liveness).toBe(3)
    expect(h.of("down")).toEqual([])
  })

  it("a pong after two silent intervals refills liveness: three more silent intervals to go down", () => {
    const h = start()
    h.advance(250) // two silent intervals: liveness 1
    expect(h.actor.getSnapshot().context.liveness).toBe(1)
    h.actor.send({ type: "PONG" })
    h.advance(50) // t = 300: answered, refill
    expect(h.actor.getSnapshot().context.liveness).toBe(3)
    h.advance(299)
    expect(h.of("down")).toEqual([])
    h.advance(1)
    expect(h.of("down")).toEqual([600])
  })

  it("comes back up on a pong and reports up once, then can go down again", () => {
    const h = start()
    h.advance(450)
    h.actor.send({ type: "PONG" })
    expect(h.actor.getSnapshot().value).toBe("up")
    expect(h.of("up")).toEqual([450])
    // The ping on re-entering up goes out at once; the interval restarts.
    expect(h.of("ping").at(-1)).toBe(450)
    h.actor.send({ type: "PONG" }) // a second pong while up reports nothing
    h.advance(100)
    expect(h.of("up")).toEqual([450])
    h.advance(300)
    expect(h.of("down")).toEqual([300, 850])
  })
})
