import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { fileLease, leaseLamport } from "../../src/actors/lamportLease.ts"
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

  it("writes the next lease ahead, off the event loop, and never lets the file go back", async () => {
    const file = fresh()
    const store = fileLease(file)
    let syncSaves = 0
    const counted = { ...store, save: (lease: number) => void (syncSaves++, store.save(lease)) }
    const clock = new LamportClock(0)
    leaseLamport(counted, clock, 100)
    expect(syncSaves).toBe(1)
    for (let i = 0; i < 60; i++) clock.tick() // past half the lease: the next one goes out asynchronously
    await new Promise((r) => setTimeout(r, 200))
    expect(Number(readFileSync(file, "utf8"))).toBe(150) // written at 50
    for (let i = 0; i < 60; i++) clock.tick() // 120: within the new lease, no synchronous write (the next one, 200, goes out at 100)
    expect(syncSaves).toBe(1)
    // A jump past the lease while that renewal is in flight: the synchronous write wins, the late one is dropped.
    clock.observe(5_000)
    expect(syncSaves).toBe(2)
    await new Promise((r) => setTimeout(r, 200))
    expect(Number(readFileSync(file, "utf8"))).toBeGreaterThanOrEqual(5_100)
    const restarted = new LamportClock(0)
    leaseLamport(file, restarted, 100)
    expect(restarted.tick()).toBeGreaterThan(clock.current)
  })
})
