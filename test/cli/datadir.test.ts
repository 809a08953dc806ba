import { spawn } from "node:child_process"
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { hostname, tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { claimDataDir } from "../../src/cli/datadir.ts"

const fresh = () => mkdtempSync(join(tmpdir(), "bulletin-datadir-"))
const startOf = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]
}

describe("the data folder's lock", () => {
  it("is taken over from a pid that is now a thread of this process (a container restarted after a kill)", () => {
    const dir = fresh()
    const thread = readdirSync("/proc/self/task").map(Number).find((t) => t !== process.pid)!
    expect(thread).toBeDefined()
    writeFileSync(join(dir, "LOCK"), JSON.stringify({ host: hostname(), pid: thread, started: "1" }))
    writeFileSync(join(dir, "OWNER"), "s1\n")
    claimDataDir(dir, "s1")
    expect(JSON.parse(readFileSync(join(dir, "LOCK"), "utf8")).pid).toBe(process.pid)
  })

  it("is refused while its holder runs, and taken over from a later process with the same pid", async () => {
    const holder = spawn("sleep", ["10"])
    await new Promise((r) => holder.once("spawn", r))
    try {
      const dir = fresh()
      writeFileSync(join(dir, "LOCK"), JSON.stringify({ host: hostname(), pid: holder.pid, started: startOf(holder.pid!) }))
      expect(() => claimDataDir(dir, "s1")).toThrow(/in use by pid/)
      // The same pid, but not the process that wrote the lock (it started at another time).
      writeFileSync(join(dir, "LOCK"), JSON.stringify({ host: hostname(), pid: holder.pid, started: "1" }))
      claimDataDir(dir, "s1")
    } finally {
      holder.kill()
    }
  })
})
