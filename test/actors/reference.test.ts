import fc from "fast-check"
import * as zmq from "zeromq"
import { afterAll, describe, expect, it } from "vitest"
import { ReferenceService } from "../../src/actors/reference.ts"
import { Registry } from "../../src/actors/registry.ts"
import { decode, encode } from "../../src/protocol/codec.ts"
import { encodeEnvelope } from "../../src/protocol/messages.ts"
import { curveClient, spawnBulletin, stopAll, tempDir } from "../support/procs.ts"

afterAll(stopAll)

const make = (deadAfterMs = 3_000, serversMax = 4) => {
  let now = 1_000_000
  const service = new ReferenceService(new Registry({ deadAfterMs, serversMax }), { now: () => now })
  const call = (service_: string, data: Record<string, unknown> = {}, clock = 1) => {
    const reply = decode(service.handle(encodeEnvelope(service_, data, { clock, timestampMs: now })))
    if (!reply.ok) throw new Error(reply.error)
    return reply.value as { service: string; data: Record<string, unknown> }
  }
  return { service, call, advance: (ms: number) => (now += ms) }
}

describe("the reference service", () => {
  it("ranks in order of first registration and keeps a rank for good", () => {
    const r = make()
    expect(r.call("rank", { user: "a", addr: "tcp://10.0.0.1:5560" }).data.rank).toBe(1)
    expect(r.call("rank", { user: "b", addr: "tcp://10.0.0.2:5560" }).data.rank).toBe(2)
    expect(r.call("rank", { user: "a" }).data.rank).toBe(1)
    expect(r.call("list").data.list).toEqual([
      { name: "a", rank: 1, addr: "tcp://10.0.0.1:5560" },
      { name: "b", rank: 2, addr: "tcp://10.0.0.2:5560" },
    ])
  })

  it("drops servers whose heartbeats stop, and gives them their rank back", () => {
    const r = make(3_000)
    r.call("rank", { user: "a" })
    r.call("rank", { user: "b" })
    r.advance(2_000)
    expect(r.call("heartbeat", { user: "a" }).data.status).toBe("OK")
    r.advance(2_000) // b silent for 4 s
    expect((r.call("list").data.list as Array<{ name: string }>).map((e) => e.name)).toEqual(["a"])
    const hb = r.call("heartbeat", { user: "b" }).data
    expect(hb.status).toBe("erro")
    expect(hb.description).toMatch(/ask for a rank again/)
    expect(r.call("rank", { user: "b" }).data.rank).toBe(2)
    expect(r.call("rank", { user: "c" }).data.rank).toBe(3)
  })

  it("refuses a registration past serversMax, with a reason", () => {
    const r = make(3_000, 2)
    r.call("rank", { user: "a" })
    r.call("rank", { user: "b" })
    const c = r.call("rank", { user: "c" }).data
    expect(c.status).toBe("erro")
    expect(c.description).toMatch(/2 servers are registered/)
    expect(r.call("rank", { user: "a" }).data.rank).toBe(1)
  })

  it("answers every malformed request with an error, keeps its Lamport rule, and keeps serving", () => {
    const r = make()
    r.call("rank", { user: "a" })
    const bad = [
      new Uint8Array([0xc1]),
      encode([1, 2, 3]),
      encode({ service: "rank", data: { user: 42 } }),
      encode({ service: "rank", data: { user: "has space" } }),
      encode({ service: "rank", data: { user: "a", addr: "http://nope" } }),
      encode({ service: "teleport", data: {} }),
      encode({ service: "heartbeat", data: {}, clock: "x" }),
      new Uint8Array(70_000),
    ]
    for (const frame of bad) {
      const reply = decode(r.service.handle(frame))
      expect(reply.ok).toBe(true)
      expect((reply as { value: { data: { status: string; description: string } } }).value.data.status).toBe("erro")
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const reply = decode(r.service.handle(bytes))
        expect(reply.ok).toBe(true)
      }),
    )
    const before = r.service.lamport.current
    const reply = r.call("list", {}, before + 100)
    expect(reply.data.clock).toBe(before + 101)
    expect((reply.data.list as Array<unknown>).length).toBe(1)
  })
})

describe("bulletin reference", () => {
  it("keeps ranks across a restart when given a data folder", async () => {
    const host = "127.81.7.1"
    const data = tempDir("reference")
    const ask = async (service: string, data_: Record<string, unknown>) => {
      const req = new zmq.Request({ linger: 0, receiveTimeout: 3_000, ...curveClient() })
      req.connect(`tcp://${host}:5559`)
      try {
        await req.send(encodeEnvelope(service, data_, { clock: 1, timestampMs: Date.now() }))
        const [reply] = await req.receive()
        return ((decode(reply!) as { value: { data: Record<string, unknown> } }).value).data
      } finally {
        req.close()
      }
    }
    const first = spawnBulletin("reference", ["reference", "--host", host, "--data", data])
    await first.waitFor(/reference: serving/)
    expect((await ask("rank", { user: "x" })).rank).toBe(1)
    expect((await ask("rank", { user: "y" })).rank).toBe(2)
    await first.stop("SIGKILL")
    const second = spawnBulletin("reference", ["reference", "--host", host, "--data", data])
    await second.waitFor(/reference: serving on .*, 2 ranks known/)
    expect((await ask("rank", { user: "y" })).rank).toBe(2)
    expect((await ask("rank", { user: "z" })).rank).toBe(3)
    expect((await ask("rank", { user: "x" })).rank).toBe(1)
  })
})
