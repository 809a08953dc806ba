import { execFile } from "node:child_process"
import { resolve } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Cluster, startCluster, stopAll } from "../support/procs.ts"

// Debian's python3 with python3-zmq and python3-msgpack (installed by scripts/setup.sh).
const python = "/usr/bin/python3"
const script = resolve(import.meta.dirname, "../interop/standard_client.py")
let cluster: Cluster

beforeAll(async () => {
  // A standard peer speaks to the reference directly: open mode, the mode for joining other implementations.
  cluster = await startCluster("127.81.2.1", 3, { open: true })
})
afterAll(stopAll)

describe("a client written from PROTOCOL.md in Python", () => {
  it("uses every standard service, with the real peers' quirks", async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((done) =>
      execFile(python, [script, cluster.brokerFrontend, cluster.proxyBackend, "1", `tcp://${cluster.host}:5559`], { timeout: 60_000 }, (err, stdout, stderr) =>
        done({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr }),
      ),
    )
    const checks = stdout.trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as { check: string; ok: boolean; detail: unknown })
    const failed = checks.filter((c) => !c.ok)
    for (const c of checks) console.log(`interop: Python client: ${c.ok ? "ok  " : "FAIL"} ${c.check}`)
    expect(stderr, "the Python client crashed (are python3-zmq and python3-msgpack installed? run scripts/setup.sh)").toBe("")
    expect(failed).toEqual([])
    expect(checks.length).toBeGreaterThanOrEqual(25)
    expect(code).toBe(0)
  })
})

describe("our client and bot against a server written from PROTOCOL.md in Python", () => {
  it("use only the standard: every client command and the bot's loop work against it", async () => {
    const { spawn } = await import("node:child_process")
    const { createInterface } = await import("node:readline")
    const { spawnBulletin } = await import("../support/procs.ts")
    const host = "127.81.13.1"
    // The Python server joins our broker and proxy as a server would: open mode.
    const broker = spawnBulletin("broker", ["broker", "--host", host, "--open"])
    const proxy = spawnBulletin("proxy", ["proxy", "--host", host, "--open"])
    await Promise.all([broker.waitFor(/broker: tcp/), proxy.waitFor(/proxy: tcp/)])
    const server = spawn(python, [resolve(import.meta.dirname, "../interop/standard_server.py"), `tcp://${host}:5556`, `tcp://${host}:5557`], { stdio: ["ignore", "pipe", "pipe"] })
    const served: Array<{ served: string; status: string }> = []
    const ready = new Promise<void>((done) =>
      createInterface({ input: server.stdout! }).on("line", (l) => {
        const o = JSON.parse(l) as { ready?: boolean; served?: string; status?: string }
        if (o.ready) done()
        else served.push(o as { served: string; status: string })
      }),
    )
    let stderr = ""
    server.stderr!.on("data", (b: Buffer) => (stderr += b.toString()))
    try {
      await ready
      const script = ["channel interop", "channels", "subscribe interop", "sleep 300", "publish interop hello standard", "message ana note to self", "users", "sleep 500", ""].join("\n")
      const client = spawnBulletin("client", ["client", "--json", "--broker", host, "--proxy", host, "--user", "ana"], { stdin: script })
      expect(await client.exited).toBe(0)
      const out = client.lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>)
      const replies = out.filter((o) => o.type === "reply")
      expect(replies.map((r) => [r.command, r.ok])).toEqual([
        ["login", true],
        ["channel", true],
        ["channels", true],
        ["publish", true],
        ["message", true],
        ["users", true],
      ])
      expect((replies[2]!.data as { channels: Array<string> }).channels).toEqual(["interop"])
      // Live, from the standard server's publications through our proxy.
      expect(out.some((o) => o.type === "publish" && o.message === "hello standard")).toBe(true)
      expect(out.some((o) => o.type === "message" && o.message === "note to self")).toBe(true)
      // The bot: log in, pick the existing channel, post, stop after 6.
      const bot = spawnBulletin("bot", ["bot", "--broker", host, "--proxy", host, "--max", "6", "--rate", "20", "--name", "stdbot"])
      expect(await bot.exited).toBe(0)
      expect(served.filter((s) => s.served === "publish" && s.status === "OK").length).toBeGreaterThanOrEqual(7)
      console.log(`interop: our client and bot against the Python standard server: ${served.length} requests served, ${served.filter((s) => s.status !== "erro").length} ok`)
      expect(stderr).toBe("")
      // The load generator works against a standard server too (no `id` echo: replies matched in order).
      const load = spawnBulletin("bench", ["bench", "--broker", host, "--clients", "2", "--window", "1", "--seconds", "1", "--mix", "publish:1,message:1", "--json"])
      expect(await load.exited).toBe(0)
      const r = JSON.parse(load.lines.find((l) => l.startsWith("{"))!) as { ok: number; errors: number; timeouts: number; publications: { lost: number; expected: number } }
      console.log(`interop: bench against the Python standard server: ${JSON.stringify(r)}`)
      expect(r.ok).toBeGreaterThan(10)
      expect([r.errors, r.timeouts, r.publications.lost]).toEqual([0, 0, 0])
      expect(r.publications.expected).toBeGreaterThan(0)
      expect(stderr).toBe("")
    } finally {
      server.kill("SIGKILL")
    }
  }, 60_000)
})
