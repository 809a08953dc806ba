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
