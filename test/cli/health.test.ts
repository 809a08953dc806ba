import { execFile } from "node:child_process"
import { resolve } from "node:path"
import { describe, expect, it } from "vitest"
import { serveDashboard } from "../../src/dashboard/http.ts"

const bin = resolve(import.meta.dirname, "../../bin/bulletin.js")
const health = (args: ReadonlyArray<string>) =>
  new Promise<{ code: number; out: string }>((done) => {
    execFile(process.execPath, [bin, "health", ...args], { timeout: 20_000 }, (error, stdout, stderr) =>
      done({ code: error === null ? 0 : typeof error.code === "number" ? error.code : -1, out: `${stdout}${stderr}` }),
    )
  })

describe("bulletin health dashboard (the dashboard container's healthcheck)", () => {
  it("is healthy when the page answers, and not when nothing listens", async () => {
    const served = await serveDashboard({ host: "127.0.0.1", port: 0 })
    const port = new URL(served.url).port
    try {
      const up = await health(["dashboard", "--host", "127.0.0.1", "--port", port])
      expect(up).toEqual({ code: 0, out: "dashboard: healthy\n" })
    } finally {
      await served.close()
    }
    const down = await health(["dashboard", "--host", "127.0.0.1", "--port", port, "--timeout", "500"])
    expect(down.code).not.toBe(0)
  })
})

describe("bulletin health bot", () => {
  it("is healthy while the bot's last acknowledged post is recent, and says why not otherwise", async () => {
    const { mkdtempSync, utimesSync, writeFileSync } = await import("node:fs")
    const { tmpdir } = await import("node:os")
    const file = resolve(mkdtempSync(resolve(tmpdir(), "bulletin-bot-")), "alive")
    const missing = await health(["bot", "--alive-file", file])
    expect(missing.code).not.toBe(0)
    expect(missing.out).toMatch(/no post acknowledged yet/)
    writeFileSync(file, "")
    expect(await health(["bot", "--alive-file", file])).toEqual({ code: 0, out: "bot: healthy\n" })
    const old = new Date(Date.now() - 60_000)
    utimesSync(file, old, old)
    const stale = await health(["bot", "--alive-file", file])
    expect(stale.code).not.toBe(0)
    expect(stale.out).toMatch(/last post acknowledged 6[0-9] s ago/)
  })
})
