import { createActor, SimulatedClock } from "xstate"
import { describe, expect, it } from "vitest"
import { heartbeatMachine } from "../../src/machines/heartbeat.ts"
import { Monitor } from "../../src/actors/monitor.ts"

describe("Monitor (the monitoring channel's transitions)", () => {
  it("records each machine's state changes with the event that caused them, bounded per interval", () => {
    let now = 1_000
    const monitor = new Monitor({ intervalMs: 1_000, transitionsMax: 3 }, () => now)
    const clock = new SimulatedClock()
    const beat = createActor(heartbeatMachine, { clock, inspect: monitor.observe("beat"), input: { intervalMs: 100, livenessMax: 1 } })
    beat.start()
    now = 1_100
    clock.increment(100) // liveness spent on the first missed interval...
    clock.increment(100)
    const first = monitor.drain()
    expect(first.transitions[0]).toEqual({ at: 1_000, machine: "beat", from: "", to: "up", event: "xstate.init" })
    expect(first.transitions.slice(1).map((t) => `${t.from} -> ${t.to}`)).toContain("up -> down.probing")
    expect(first.dropped).toBe(0)
    // Same state again is not a transition; the bound drops and counts the excess.
    for (let i = 0; i < 5; i++) {
      beat.send({ type: "PONG" })
      clock.increment(100)
      clock.increment(100)
    }
    const second = monitor.drain()
    expect(second.transitions.length).toBe(3)
    expect(second.dropped).toBeGreaterThan(0)
    expect(monitor.drain()).toEqual({ transitions: [], dropped: 0 })
    beat.stop()
  })
})

describe("Monitor microsteps", () => {
  it("shows a state entered and left in one macrostep, and eventless transitions as 'always'", async () => {
    const { bullyMachine } = await import("../../src/machines/bully.ts")
    const monitor = new Monitor({ intervalMs: 1_000, transitionsMax: 64 }, () => 0)
    const bully = createActor(bullyMachine, { clock: new SimulatedClock(), inspect: monitor.observe("bully"), input: { self: { name: "a", rank: 1 } } as never })
    bully.start()
    bully.send({ type: "PEERS", peers: [] } as never)
    expect(monitor.drain().transitions.map((t) => `${t.from} -> ${t.to} on ${t.event}`)).toEqual([
      " -> starting on xstate.init",
      "starting -> electing on PEERS",
      "electing -> leader.announcing on always",
    ])
    expect(monitor.states()).toEqual({ bully: "leader.announcing" })
    bully.stop()
    expect(monitor.drain().transitions.map((t) => t.to)).toEqual(["(stopped)"])
    expect(monitor.states()).toEqual({})
  })
})
