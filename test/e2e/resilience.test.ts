import { join } from "node:path"
import * as zmq from "zeromq"
import { afterAll, describe, expect, it } from "vitest"
import { decode, encode } from "../../src/protocol/codec.ts"
import { Limits } from "../../src/protocol/limits.ts"
import { spawnBulletin, stopAll, tempDir } from "../support/procs.ts"

afterAll(stopAll)

describe("a server whose proxy is down", () => {
  it("still serves every request (publications are dropped, not waited for)", async () => {
    const host = "127.81.36.1"
    const data = tempDir("noproxy")
    const broker = spawnBulletin("broker", ["broker", "--host", host])
    await broker.waitFor(/broker: tcp/)
    const server = spawnBulletin("server", ["server", "--name", "lonely", "--data", join(data, "lonely"), "--broker", host, "--proxy", host, "--reference", "none"])
    await server.waitFor(/serving requests/, 30_000)
    expect(server.lines.join("\n")).toContain("no echo from the proxy")
    const sock = new zmq.Request({ linger: 0, receiveTimeout: 5_000 })
    sock.connect(`tcp://${host}:5555`)
    const ask = async (v: unknown) => {
      await sock.send(encode(v))
      const d = decode((await sock.receive())[0]!)
      return (d.ok ? d.value : undefined) as { data: Record<string, unknown> }
    }
    try {
      expect((await ask({ service: "login", data: { user: "solo" } })).data.status).toBe("sucesso")
      expect((await ask({ service: "channel", data: { channel: "void" } })).data.status).toBe("sucesso")
      const t0 = performance.now()
      for (let i = 0; i < 200; i++) expect((await ask({ service: "publish", data: { user: "solo", channel: "void", message: `m${i}` } })).data.status).toBe("OK")
      // Generous bound: a blocking publisher would take 200 x publishRetryMs (1 s).
      expect(performance.now() - t0).toBeLessThan(30_000)
      const h = await ask({ service: "history", data: { channel: "void", limit: 500 } })
      expect((h.data.messages as Array<unknown>).length).toBe(200)

      // Past Limits.transportFrameBytesMax ZeroMQ drops the sender's connection
      // at the broker: no reply is possible, and everyone else is unaffected.
      const hog = new zmq.Request({ linger: 0, receiveTimeout: 1_500 })
      hog.connect(`tcp://${host}:5555`)
      await hog.send(new Uint8Array(Limits.transportFrameBytesMax + 1024))
      await expect(hog.receive()).rejects.toMatchObject({ code: "EAGAIN" })
      hog.close()
      expect((await ask({ service: "channels", data: {} })).data.channels).toEqual(["void"])
    } finally {
      sock.close()
    }
  })
})
