import { join } from "node:path"
import { Effect } from "effect"
import * as zmq from "zeromq"
import { defaultClientConfig, makeClient } from "../../src/actors/client.ts"
import { layerZmq } from "../../src/transport/zmq.ts"
import { defaultServerConfig } from "../../src/actors/server.ts"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { decode, encode } from "../../src/protocol/codec.ts"
import { Limits } from "../../src/protocol/limits.ts"
import { type Proc, spawnBulletin, stopAll, tempDir } from "../support/procs.ts"

/**
 * The attacks of issue 13, each against real processes, each refused. (The
 * fuzzing suite and the attacks that need authentication come with it.)
 */
const host = "127.81.8.1"
let server: Proc

beforeAll(async () => {
  const broker = spawnBulletin("broker", ["broker", "--host", host])
  const proxy = spawnBulletin("proxy", ["proxy", "--host", host])
  await Promise.all([broker.waitFor(/broker: tcp/), proxy.waitFor(/proxy: tcp/)])
  server = spawnBulletin("server", ["server", "--name", "target", "--data", join(tempDir("hostile"), "target"), "--broker", host, "--proxy", host, "--reference", "none", "--host", host])
  await server.waitFor(/serving requests/, 30_000)
})
afterAll(stopAll)

const asker = () => {
  const sock = new zmq.Request({ linger: 0, receiveTimeout: 5_000 })
  sock.connect(`tcp://${host}:5555`)
  const ask = async (v: unknown) => {
    await sock.send(encode(v))
    const d = decode((await sock.receive())[0]!)
    return (d.ok ? d.value : undefined) as { data: Record<string, unknown>; clock?: number }
  }
  return { ask, close: () => sock.close() }
}

describe("hostile requests", () => {
  it("a client's Lamport clock far ahead is refused and moves no server's clock (Lamport poisoning)", async () => {
    const { ask, close } = asker()
    try {
      for (const clock of [2 ** 40, 2 ** 52, Limits.clientClockAheadMax * 4]) {
        const r = await ask({ service: "channels", data: { clock } })
        expect(r.data.status).toBe("erro")
        expect(String(r.data.description)).toMatch(/field 'clock' (is \d+ ahead of this server's Lamport clock|must be an integer between)/)
      }
      const normal = await ask({ service: "login", data: { user: "honest", clock: 5 } })
      expect(normal.data.status).toBe("sucesso")
      expect(Number(normal.data.clock)).toBeLessThan(Limits.clientClockAheadMax)
      // Within the window a client's clock is adopted (Lamport's rule): the reply is after it.
      const ahead = Number(normal.data.clock) + 1_000
      const adopted = await ask({ service: "channels", data: { clock: ahead } })
      expect(adopted.data.status).toBe("OK")
      expect(Number(adopted.data.clock)).toBeGreaterThan(ahead)
    } finally {
      close()
    }
    expect(server.child.exitCode).toBeNull()
  })
})

describe("overload", () => {
  it("past its request limit a server answers 'busy' at once: every request gets an answer", async () => {
    const dealer = new zmq.Dealer({ linger: 0, receiveTimeout: 10_000, sendHighWaterMark: 10_000, receiveHighWaterMark: 10_000 })
    dealer.connect(`tcp://${host}:5555`)
    // Four times what a server takes at once, all in flight on one server (the only one here).
    const n = 4 * defaultServerConfig("x").concurrentRequestsMax
    try {
      // Each of these holds a server slot for replicationWaitMs (a 'seen' it cannot satisfy).
      for (let i = 0; i < n; i++) await dealer.send([new Uint8Array(0), encode({ service: "history", data: { channel: "nowhere", seen: { ghost: 5 }, id: `flood-${i}` } })])
      const replies: Array<Record<string, unknown>> = []
      const t0 = performance.now()
      while (replies.length < n) {
        const [, body] = await dealer.receive()
        const d = decode(body!)
        replies.push(d.ok ? (d.value as { data: Record<string, unknown> }).data : {})
      }
      const busy = replies.filter((r) => r.busy === true)
      console.log(`hostile: ${n} requests in flight: ${busy.length} answered busy, ${n - busy.length} served, all within ${(performance.now() - t0).toFixed(0)} ms`)
      expect(busy.length).toBeGreaterThan(n / 2)
      expect(busy.every((r) => r.status === "erro" && r.retry === true && typeof r.id === "string")).toBe(true)
      expect(new Set(replies.map((r) => r.id)).size).toBe(n)
    } finally {
      dealer.close()
    }
    // And it serves normally afterwards.
    const { ask, close } = asker()
    try {
      expect((await ask({ service: "channels", data: {} })).data.status).toBe("OK")
    } finally {
      close()
    }
  })
})

describe("replies our own client can read", () => {
  it("10,000 channels: every reply fits a frame, and our client pages through them all", async () => {
    const dealer = new zmq.Dealer({ linger: 0, receiveTimeout: 10_000 })
    dealer.connect(`tcp://${host}:5555`)
    const n = 10_000
    const name = (i: number) => `c${String(i).padStart(5, "0")}${"z".repeat(26)}`
    try {
      // 50 in flight at a time (below the server's limit of 64, so none is answered busy).
      for (let i = 0; i < n; i += 50) {
        for (let j = i; j < Math.min(n, i + 50); j++) await dealer.send([new Uint8Array(0), encode({ service: "channel", data: { channel: name(j) } })])
        for (let j = i; j < Math.min(n, i + 50); j++) {
          const [, body] = await dealer.receive()
          const d = decode(body!)
          expect(d.ok && (d.value as { data: { status: string } }).data.status).toBe("sucesso")
        }
      }
    } finally {
      dealer.close()
    }
    const { ask, close } = asker()
    try {
      const first = await ask({ service: "channels", data: {} })
      // A standard client gets the first page; it fits a frame our client accepts.
      expect(encode(first).byteLength).toBeLessThanOrEqual(Limits.frameBytesMax)
      expect(first.data.more).toBe(true)
    } finally {
      close()
    }
    const listed = await Effect.runPromise(
      Effect.scoped(Effect.flatMap(makeClient({ ...defaultClientConfig, broker: `tcp://${host}:5555`, proxy: `tcp://${host}:5558` }), (c) => c.channels())).pipe(Effect.provide(layerZmq())),
    )
    expect(listed.ok).toBe(true)
    const all = listed.data.channels as Array<string>
    expect(all.filter((c) => c.startsWith("c") && c.endsWith("z")).length).toBe(n)
    expect(new Set(all).size).toBe(all.length)
  }, 120_000)
})
