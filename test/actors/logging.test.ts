import { Effect } from "effect"
import { afterEach, describe, expect, it, vi } from "vitest"
import { logSettingsFrom, withLogging } from "../../src/actors/logging.ts"

const captured = () => {
  const lines: Array<string> = []
  vi.spyOn(process.stdout, "write").mockImplementation((s) => (lines.push(String(s)), true))
  vi.spyOn(process.stderr, "write").mockImplementation((s) => (lines.push(`stderr ${String(s)}`), true))
  return lines
}
afterEach(() => vi.restoreAllMocks())

const program = Effect.gen(function* () {
  yield* Effect.logDebug("server s1: Berkeley round 3: 3 clocks averaged, 0 left out")
  yield* Effect.logInfo("server s1: coordinator is s1 (this server)")
  yield* Effect.logWarning("careful")
})

describe("role logs", () => {
  it("are `[time] LEVEL message`, without fiber ids, at info and above by default", () => {
    const lines = captured()
    Effect.runSync(withLogging(logSettingsFrom({}, false))(program))
    vi.restoreAllMocks()
    expect(lines).toHaveLength(2)
    expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO server s1: coordinator is s1 \(this server\)\n$/)
    expect(lines[1]).toMatch(/^stderr \[[\d:.]+\] WARN careful\n$/)
    expect(lines.join("")).not.toMatch(/#\d+/)
  })

  it("show debug lines with BULLETIN_LOG_LEVEL=debug, and are JSON lines with BULLETIN_LOG_FORMAT=json", () => {
    const lines = captured()
    Effect.runSync(withLogging(logSettingsFrom({ BULLETIN_LOG_LEVEL: "debug", BULLETIN_LOG_FORMAT: "json" }, false))(program))
    vi.restoreAllMocks()
    const objects = lines.map((l) => JSON.parse(l.replace(/^stderr /, "")) as { level: string; message: string; time: string })
    expect(objects.map((o) => o.level)).toEqual(["debug", "info", "warn"])
    expect(objects[0]!.message).toContain("Berkeley round 3")
    expect(Number.isNaN(Date.parse(objects[0]!.time))).toBe(false)
  })

  it("have colour only on a terminal without NO_COLOR, and never red for info", () => {
    expect(logSettingsFrom({}, true).color).toBe(true)
    expect(logSettingsFrom({ NO_COLOR: "1" }, true).color).toBe(false)
    expect(logSettingsFrom({}, false).color).toBe(false)
    const lines = captured()
    Effect.runSync(withLogging(logSettingsFrom({}, true))(program))
    vi.restoreAllMocks()
    expect(lines[0]).not.toContain("\u001b[31m")
    expect(lines[1]).toContain("\u001b[33mWARN")
    expect(() => logSettingsFrom({ BULLETIN_LOG_LEVEL: "loud" }, false)).toThrow(/BULLETIN_LOG_LEVEL/)
  })
})
