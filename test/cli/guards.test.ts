import { spawnSync } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { bin } from "../support/procs.ts"

/** Settings that used to mean something else, or that the environment may hold for another purpose, do no harm. */
const run = (args: ReadonlyArray<string>, env: Record<string, string>) => {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: "utf8", timeout: 30_000, env: { ...process.env, BULLETIN_CONFIG: "", ...env } })
  return { code: r.status, out: `${r.stdout}${r.stderr}` }
}

describe("guards", () => {
  it("keygen does not replace a key file it finds in BULLETIN_KEY_FILE unless told to", () => {
    const file = join(mkdtempSync(join(tmpdir(), "bulletin-keygen-")), "cluster.key")
    const key = run(["keygen"], {}).out
    writeFileSync(file, key)
    const r = run(["keygen"], { BULLETIN_KEY_FILE: file })
    expect(r.code).toBe(2)
    expect(r.out).toMatch(/exists .*--if-missing keeps it, --force replaces it \(the file comes from BULLETIN_KEY_FILE\)/)
    expect(readFileSync(file, "utf8")).toBe(key)
    expect(run(["keygen", "--if-missing"], { BULLETIN_KEY_FILE: file }).code).toBe(0)
    expect(readFileSync(file, "utf8")).toBe(key)
    expect(run(["keygen", "--force"], { BULLETIN_KEY_FILE: file }).code).toBe(0)
    const replaced = readFileSync(file, "utf8")
    expect(replaced).not.toBe(key)
    expect(replaced.length).toBe(key.length)
  })

  it("up with DATA_DIR set (its old meaning) stops and names DATA_ROOT instead of starting an empty cluster in ./data", () => {
    const r = run(["up", "--host", "127.81.33.9"], { DATA_DIR: "/srv/old-cluster" })
    expect(r.code).toBe(2)
    expect(r.out).toMatch(/DATA_DIR is one server's own folder, not up's: .*--data-root \(DATA_ROOT or BULLETIN_DATA_ROOT=\/srv\/old-cluster\)/)
  })

  it("up checks its roles' config sections before it starts them", () => {
    const dir = mkdtempSync(join(tmpdir(), "bulletin-config-"))
    writeFileSync(join(dir, "config"), "[server]\nrequire-acounts = true\n")
    const r = run(["up", "--host", "127.81.33.9"], { BULLETIN_CONFIG: join(dir, "config") })
    expect(r.code).toBe(2)
    expect(r.out).toMatch(/config:2: \[server\] has no setting 'require-acounts'; did you mean 'require-accounts'\?/)
  })
})
