import { spawnSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { bin } from "../support/procs.ts"

/** The config file as `bulletin` itself reads it: found, applied to the command that runs, its mistakes a usage error with file and line. */
const run = (args: ReadonlyArray<string>, config: string, env: Record<string, string> = {}) => {
  const dir = mkdtempSync(join(tmpdir(), "bulletin-config-"))
  writeFileSync(join(dir, "config"), config)
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", timeout: 30_000, env: { ...process.env, BULLETIN_CONFIG: join(dir, "config"), ...env } })
  return { code: r.status, out: `${r.stdout}${r.stderr}`, file: join(dir, "config") }
}

describe("the config file, through bulletin", () => {
  it("a command's section with a setting it does not have: exit 2, the file's line and what was meant", () => {
    const r = run(["status", "--timeout", "100"], "[status]\ntimout = 100\n")
    expect(r.code).toBe(2)
    expect(r.out).toContain(`${r.file}:2: [status] has no setting 'timout'; did you mean 'timeout'?`)
  })

  it("a global setting of every command (log-level) is checked like its flag", () => {
    const r = run(["status"], "log-level = loud\n")
    expect(r.code).toBe(2)
    expect(r.out).toMatch(/--log-level must be debug, info, warn or error, got 'loud'/)
  })

  it("its settings reach the command: [health] host and timeout make the probe look where the file says", () => {
    const r = run(["health", "broker"], "[health]\nhost = 127.81.33.1\ntimeout = 300\n")
    expect(r.code).toBe(3)
    expect(r.out).toContain("127.81.33.1")
  })

  it("--config names another file; a missing one is an error", () => {
    const r = run(["--config", "/nonexistent/config", "status"], "")
    expect(r.code).toBe(2)
    expect(r.out).toMatch(/config file \/nonexistent\/config: no such file/)
  })
})
