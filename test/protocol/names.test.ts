import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { Limits } from "../../src/protocol/limits.ts"
import { isValidName, nameProblem, textProblem } from "../../src/protocol/names.ts"

const letter = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789çãéüßж漢")
const tail = fc.constantFrom(..."abcXYZ019_.-çé")
export const validName = fc
  .tuple(letter, fc.array(tail, { maxLength: Limits.nameCodePointsMax - 1 }))
  .map(([h, t]) => h + t.join(""))
  .filter((n) => !["servers", "replication"].includes(n.toLowerCase()))

describe("names", () => {
  it("accepts letters, digits, _ . - up to the limit", () => {
    fc.assert(fc.property(validName, (n) => { expect(nameProblem(n)).toBeUndefined() }))
  })

  it.each([
    ["", "must not be empty"],
    ["a".repeat(Limits.nameCodePointsMax + 1), "at most"],
    ["-rf", "must start"],
    ["..", "must start"],
    ["a b", "may hold only"],
    ["ana\u202e", "may hold only"],
    ["zero\u200bwidth", "may hold only"],
    ["tab\tname", "may hold only"],
    ["a/b", "may hold only"],
    ["e\u0301", "NFC"],
    ["servers", "reserved"],
    ["Replication", "reserved"],
  ])("rejects %j", (name, why) => {
    expect(nameProblem(name)).toContain(why)
  })

  it("counts code points, not UTF-16 units", () => {
    expect(isValidName("漢".repeat(Limits.nameCodePointsMax))).toBe(true)
    // 32 astral letters are 64 UTF-16 units: still legal.
    expect(isValidName("𝒜".repeat(Limits.nameCodePointsMax))).toBe(true)
    expect(isValidName("𝒜".repeat(Limits.nameCodePointsMax + 1))).toBe(false)
  })

  it("rejects any name with a character outside the allowed classes", () => {
    const bad = fc.constantFrom(..." /\\:*?\"<>|\u0000\u001b\u007f\u200b\u202e\u2066#@!$%^&()+=")
    fc.assert(fc.property(validName, bad, fc.nat(), (n, b, at) => {
      const i = at % (n.length + 1)
      expect(isValidName(n.slice(0, i) + b + n.slice(i))).toBe(false)
    }))
  })
})

describe("message text", () => {
  it("accepts printable text with newlines and tabs", () => {
    expect(textProblem("hello\n\tworld ✓")).toBeUndefined()
  })
  it("rejects empty, oversized and terminal escapes", () => {
    expect(textProblem("")).toContain("empty")
    expect(textProblem("x".repeat(Limits.messageCodePointsMax + 1))).toContain("at most")
    expect(textProblem("x".repeat(Limits.messageCodePointsMax))).toBeUndefined()
    expect(textProblem("evil \u001b[2J")).toContain("control")
  })
})
