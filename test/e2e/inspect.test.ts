import { join } from "node:path"
import { createWebSocketReceiver } from "@statelyai/inspect"
import { afterAll, describe, expect, it } from "vitest"
import { spawnBulletin, startCluster, stopAll, serverHost } from "../support/procs.ts"

/**
 * `--inspect`: a server sends its machines' inspection events to the relay
 * (`bulletin inspector`), which passes them on to whoever watches — here a
 * receiver from @statelyai/inspect, standing in for the Stately inspector
 * page: it sees each machine registered under the server's name, and the
 * bully machine's snapshots reach `leader`.
 */
const host = "127.81.37.1"
const relayPort = 18_081
afterAll(stopAll)

describe("XState inspector (--inspect)", () => {
  it("sends every machine, named by server, to the relay", async () => {
    const relay = spawnBulletin("inspector", ["inspector", "--port", String(relayPort)])
    await relay.waitFor(/relay on/)
    const cluster = await startCluster(host, 0)
    const events: Array<{ type: string; name?: string; sessionId?: string; snapshot?: { value?: unknown } }> = []
    const receiver = createWebSocketReceiver({ server: `ws://127.0.0.1:${relayPort}` })
    const sub = receiver.subscribe((e) => events.push(e as never))
    await new Promise((r) => setTimeout(r, 500))
    const server = spawnBulletin("server-1", ["server", "--name", "server-1", "--data", join(cluster.dataRoot, "server-1"), "--broker", host, "--proxy", host, "--reference", host, "--host", serverHost(host, 1), "--inspect", "--inspect-url", `ws://127.0.0.1:${relayPort}`])
    await server.waitFor(/serving requests/)
    const deadline = performance.now() + 15_000
    const names = () => new Set(events.filter((e) => e.type === "@xstate.actor").map((e) => e.name))
    const bully = () => events.find((e) => e.type === "@xstate.actor" && e.name === "server-1/bully")?.sessionId
    const leader = () => events.some((e) => e.type === "@xstate.snapshot" && e.sessionId === bully() && JSON.stringify(e.snapshot?.value).includes("leader"))
    while (performance.now() < deadline && !(names().size >= 4 && leader())) await new Promise((r) => setTimeout(r, 100))
    sub.unsubscribe()
    expect([...names()].sort()).toEqual(expect.arrayContaining(["server-1/berkeley", "server-1/bully", "server-1/referenceHeartbeat", "server-1/replication"]))
    expect(leader()).toBe(true)
    // Session ids count from x:0 in every process: qualified by server, so several servers share one relay.
    expect(bully()).toMatch(/^server-1:x:\d+$/)
  }, 60_000)
})

describe("the inspector relay", () => {
  it("gives a viewer that connects late every actor's registration and latest snapshot, then the live stream", async () => {
    const { startInspectorRelay } = await import("../../src/cli/inspect.ts")
    const { WebSocket } = await import("ws")
    const port = 18_082
    const relay = startInspectorRelay(port)
    try {
      const open = (ws: InstanceType<typeof WebSocket>) => new Promise<void>((done, fail) => (ws.once("open", () => done()), ws.once("error", fail)))
      const sender = new WebSocket(`ws://127.0.0.1:${port}`)
      await open(sender)
      sender.send(JSON.stringify({ type: "@xstate.actor", sessionId: "x:0", name: "server-1/bully" }))
      for (let i = 0; i < 500; i++) sender.send(JSON.stringify({ type: "@xstate.snapshot", sessionId: "x:0", snapshot: { value: `s${i}` } }))
      sender.send("not json") // ignored, not fatal
      await new Promise((r) => setTimeout(r, 300))
      const viewer = new WebSocket(`ws://127.0.0.1:${port}`)
      const got: Array<{ type: string; name?: string; snapshot?: { value: string } }> = []
      viewer.on("message", (d) => got.push(JSON.parse(d.toString()) as never))
      await open(viewer)
      await new Promise((r) => setTimeout(r, 200))
      sender.send(JSON.stringify({ type: "@xstate.event", sessionId: "x:0", event: { type: "PING" } }))
      await new Promise((r) => setTimeout(r, 200))
      expect(got.map((e) => e.type)).toEqual(["@xstate.actor", "@xstate.snapshot", "@xstate.event"])
      expect(got[0]!.name).toBe("server-1/bully")
      expect(got[1]!.snapshot!.value).toBe("s499")
      sender.close()
      viewer.close()
    } finally {
      relay.stop()
    }
  })
})
