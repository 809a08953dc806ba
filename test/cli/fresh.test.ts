import { mkdirSync, mkdtempSync, utimesSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
// @ts-expect-error: plain JavaScript beside the bin, no declarations
import { builtAndFresh } from "../../bin/fresh.mjs"

/** The bin runs dist/ only while it is newer than every source: never stale code. */
describe("the bin's choice between dist/ and the sources", () => {
  const tree = () => {
    const root = mkdtempSync(join(tmpdir(), "bulletin-fresh-"))
    for (const d of ["src/cli", "bench", "dist"]) mkdirSync(join(root, d), { recursive: true })
    for (const f of ["src/cli/main.ts", "bench/bench.ts", "tsconfig.json", "tsconfig.build.json", "package.json"]) writeFileSync(join(root, f), "")
    const at = (f: string, seconds: number) => utimesSync(join(root, f), seconds, seconds)
    for (const f of ["src/cli/main.ts", "bench/bench.ts", "tsconfig.json", "tsconfig.build.json", "package.json"]) at(f, 1_000)
    return { root, at }
  }

  it("never built: the sources", () => {
    expect(builtAndFresh(tree().root)).toBe(false)
  })

  it("built after the last change: dist/", () => {
    const { root, at } = tree()
    writeFileSync(join(root, "dist/.built"), "")
    at("dist/.built", 2_000)
    expect(builtAndFresh(root)).toBe(true)
  })

  it("a source, a benchmark or the build's configuration changed since: the sources", () => {
    for (const f of ["src/cli/main.ts", "bench/bench.ts", "tsconfig.build.json", "package.json"]) {
      const { root, at } = tree()
      writeFileSync(join(root, "dist/.built"), "")
      at("dist/.built", 2_000)
      at(f, 3_000)
      expect(builtAndFresh(root), f).toBe(false)
    }
  })
})
