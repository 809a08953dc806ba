import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { leaseLamport } from "../../src/actors/lamportLease.ts"
import { LamportClock } from "../../src/machines/lamport.ts"

const fresh = () => join(mkdtempSync(join(tmpdir(), "bulletin-lamport-")), "lamport")

describe("the Lamport lease across restarts", () => {
  it("a restarted process starts above every value it could have sent", () => {
    const file = fresh()
    const first = new LamportClock(5)
    leaseLamport(file, first, 100)
    expect(Number(readFileSync(file, "utf8"))).toBe(105)
    let sent = 0
    for (let i = 0; i < 250; i++) sent = first.tick()
    first.observe(1_000) // a peer's clock pulls ours far ahead
    sent = first.tick()
    // "SIGKILL": a new process whose store only knows clock 7.
    const second = new LamportClock(7)
    leaseLamport(file, second, 100)
    expect(second.tick()).toBeGreaterThan(sent)
  })

  it("refuses a corrupted lease file rather than guessing", () => {
    const file = fresh()
    writeFileSync(file, "not a number")
    expect(() => leaseLamport(file, new LamportClock(), 100)).toThrow(/not a Lamport lease/)
  })
})
