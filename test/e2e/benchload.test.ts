import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Cluster, spawnBulletin, startCluster, stopAll } from "../support/procs.ts"

/**
 * `bulletin bench --broker HOST`: the load generator for a running cluster.
 * Two seconds of a mixed load against our own cluster: it reports every
 * figure, with no errors, timeouts or lost publications.
 */
const host = "127.81.19.1"
let cluster: Cluster
beforeAll(async () => {
  cluster = await startCluster(host, 2)
}, 60_000)
afterAll(stopAll)

describe("bench against a running cluster", () => {
  it("loads it with a mix for a few seconds and reports rates, latencies, errors and publications as JSON", async () => {
    const run = spawnBulletin("bench", ["bench", "--broker", host, "--clients", "4", "--window", "4", "--seconds", "2", "--mix", "publish:8,message:1,history:1", "--msg-bytes", "100", "--json"])
    expect(await run.exited).toBe(0)
    const line = run.lines.find((l) => l.startsWith("{"))
    expect(line, run.lines.join("\n")).toBeDefined()
    const r = JSON.parse(line!) as Record<string, any>
    console.log(`bench: ${line}`)
    expect(r.clients).toBe(4)
    expect(r.window).toBe(4)
    expect(r.mix).toEqual({ publish: 8, message: 1, history: 1 })
    expect(r.requests).toBeGreaterThan(50)
    expect(r.ok).toBe(r.requests)
    expect([r.errors, r.timeouts]).toEqual([0, 0])
    expect(r.requestsPerSecond).toBeGreaterThan(0)
    for (const k of ["p50", "p90", "p99", "max"]) expect(r.latencyMs[k]).toBeGreaterThan(0)
    expect(r.latencyMs.p50).toBeLessThanOrEqual(r.latencyMs.p99)
    expect(r.publications.expected).toBeGreaterThan(0)
    expect(r.publications.lost).toBe(0)
    expect(r.loadGeneratorCpu).toBeGreaterThan(0)
  }, 60_000)

  it("with a list of client counts, measures the curve: one load per count", async () => {
    const run = spawnBulletin("bench", ["bench", "--broker", host, "--clients", "1,3", "--seconds", "1", "--json"])
    expect(await run.exited).toBe(0)
    const r = JSON.parse(run.lines.find((l) => l.startsWith("["))!) as Array<{ clients: number; ok: number; errors: number; publications: { lost: number } }>
    expect(r.map((x) => x.clients)).toEqual([1, 3])
    for (const x of r) expect([x.ok > 0, x.errors, x.publications.lost]).toEqual([true, 0, 0])
  }, 60_000)

  it("says what is wrong with a bad mix", async () => {
    const run = spawnBulletin("bench", ["bench", "--broker", host, "--mix", "publish:1,nope:2", "--seconds", "1"])
    expect(await run.exited).toBe(2)
    expect(run.lines.join("\n")).toMatch(/--mix: unknown kind 'nope'/)
  })
})
