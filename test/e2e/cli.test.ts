import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { spawnBulletin, stopAll, tempDir } from "../support/procs.ts"

afterAll(stopAll)

const jsonLines = (lines: ReadonlyArray<string>) => lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>)

describe("bulletin up", () => {
  it("starts the topology with bots visibly posting, serves a scripted client, and stops cleanly on SIGINT", async () => {
    const host = "127.81.3.1"
    const data = tempDir("up")
    const up = spawnBulletin("up", ["up", "--data", data, "--host", host, "--server-ip-base", "127.81.3.11", "--bot-rate", "20"])
    await up.waitFor(/server-3 +\|.*serving requests/, 30_000)
    await up.waitFor(/bot-\d +\|.*logged in/, 30_000)
    // The highest rank leads (ranks follow registration order, so any server may be it).
    await up.waitFor(/server-\d +\|.*coordinator is (server-\d) \(this server\)/, 30_000)

    // The scripted client: commands on stdin, JSON lines out.
    const client = spawnBulletin(
      "client",
      ["client", "--json", "--broker", host, "--proxy", host, "--user", "watcher", "--linger", "3000"],
      { stdin: ["subscribe general", "sleep 2000", "channels", "channel watchers", "publish watchers first!", "message watcher note to self", "history watchers", ""].join("\n") },
    )
    expect(await client.exited).toBe(0)
    const out = jsonLines(client.lines)
    const replies = out.filter((o) => o.type === "reply")
    expect(replies.map((r) => [r.command, r.ok])).toEqual([
      ["login", true],
      ["channels", true],
      ["channel", true],
      ["publish", true],
      ["message", true],
      ["history", true],
    ])
    expect((replies[1]!.data as { channels: Array<string> }).channels).toContain("general")
    const botPosts = out.filter((o) => o.type === "publish" && o.channel === "general")
    expect(botPosts.length, "bot posts seen live on #general").toBeGreaterThan(5)
    expect(out.some((o) => o.type === "message" && o.message === "note to self")).toBe(true)
    // Bots post to any channel that exists, "watchers" too once it does: ours is the only post not a bot's.
    expect((replies[5]!.data as { messages: Array<{ message: string; user: string }> }).messages.filter((m) => !m.user.startsWith("bot-")).map((m) => m.message)).toEqual(["first!"])

    // A script learns from the exit status that a command failed.
    const failing = spawnBulletin("client-failing", ["client", "--json", "--broker", host, "--proxy", host, "--user", "watcher2", "--linger", "0"], {
      stdin: ["channels", "publish no-such-channel hello", ""].join("\n"),
    })
    expect(await failing.exited).toBe(1)
    expect(jsonLines(failing.lines).filter((o) => o.type === "reply").map((r) => [r.command, r.ok])).toEqual([["login", true], ["channels", true], ["publish", false]])

    up.child.kill("SIGINT")
    expect(await up.exited).toBe(0)
    // broker, proxy, reference, 3 servers, 2 bots
    expect(up.lines.filter((l) => /SIGTERM: shutting down/.test(l)).length).toBe(8)
  })

  it("refuses a data folder that belongs to another server", async () => {
    const data = join(tempDir("owner"), "s")
    const a = spawnBulletin("a", ["server", "--name", "alpha", "--data", data, "--broker", "127.81.4.1", "--proxy", "127.81.4.1", "--reference", "none"])
    await a.waitFor(/ops on disk/)
    const b = spawnBulletin("b", ["server", "--name", "beta", "--data", data, "--broker", "127.81.4.1", "--proxy", "127.81.4.1", "--reference", "none"])
    // A refusal at run time: exit 1 (2 is for a command line that cannot be run as written).
    expect(await b.exited).toBe(1)
    expect(b.lines.join("\n")).toContain("belongs to server 'alpha'")
    const a2 = spawnBulletin("a2", ["server", "--name", "alpha", "--data", data, "--broker", "127.81.4.1", "--proxy", "127.81.4.1", "--reference", "none"])
    expect(await a2.exited).toBe(1)
    expect(a2.lines.join("\n")).toContain("in use by pid")
    await a.stop()
  })

  it("prints help and rejects unknown commands", async () => {
    const h = spawnBulletin("help", ["--help"])
    expect(await h.exited).toBe(0)
    expect(h.lines.join("\n")).toContain("Commands:")
    const u = spawnBulletin("bad", ["frobnicate"])
    expect(await u.exited).toBe(2)
    const typo = spawnBulletin("typo", ["helth"])
    expect(await typo.exited).toBe(2)
    expect(typo.lines.join("\n")).toContain("did you mean 'health'?")
    const flag = spawnBulletin("flag", ["up", "--severs", "2"])
    expect(await flag.exited).toBe(2)
    expect(flag.lines.join("\n")).toContain("did you mean --servers?")
    const v = spawnBulletin("version", ["--version"])
    expect(await v.exited).toBe(0)
    expect(v.lines.join("\n")).toMatch(/^bulletin \d+\.\d+\.\d+/)
    const h2 = spawnBulletin("help-short", ["health", "-h"])
    expect(await h2.exited).toBe(0)
    expect(h2.lines.join("\n")).toContain("3 if it does not")
  })

  it("stops quietly when its reader goes away (a closed pipe)", async () => {
    const { execFileSync } = await import("node:child_process")
    // `sim --seed 1` prints a long timeline: `head -1` closes the pipe after its first line.
    const bin = join(import.meta.dirname, "../../bin/bulletin.js")
    const script = `node ${JSON.stringify(bin)} sim --seed 1 2>&1 | head -1; echo "status $` + `{PIPESTATUS[0]}"`
    const out = execFileSync("bash", ["-c", script], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 })
    expect(out).toMatch(/status 0/)
    expect(out).not.toMatch(/EPIPE/)
  })

  it("says which port is taken and the flag that moves it, at once", async () => {
    const { createServer } = await import("node:net")
    const squatter = createServer().listen(5555, "127.81.4.9")
    await new Promise((r) => squatter.once("listening", r))
    try {
      const started = performance.now()
      const u = spawnBulletin("up-taken", ["up", "--host", "127.81.4.9", "--server-ip-base", "127.81.5.1", "--dashboard-port", "none", "--data", tempDir("taken")])
      expect(await u.exited).toBe(1)
      expect(performance.now() - started).toBeLessThan(10_000)
      expect(u.lines.join("\n")).toContain("127.81.4.9:5555 (broker) is already in use")
      expect(u.lines.join("\n")).toContain("--host")
    } finally {
      squatter.close()
    }
  })
})
