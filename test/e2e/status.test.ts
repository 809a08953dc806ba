import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Cluster, spawnBulletin, startCluster, stopAll } from "../support/procs.ts"

/** `bulletin status` against a running cluster: the table, JSON, and an exit status that says whether the servers agree. */
const host = "127.81.21.1"
let cluster: Cluster
beforeAll(async () => {
  cluster = await startCluster(host, 3)
  await Promise.race(cluster.servers.map((s) => s.waitFor(/coordinator is server-\d \(this server\)/, 20_000)))
}, 60_000)
afterAll(stopAll)

const status = async (args: ReadonlyArray<string>) => {
  const p = spawnBulletin("status", ["status", "--reference", host, ...args])
  const code = await p.exited
  return { code, out: p.lines.join("\n") }
}

describe("bulletin status", () => {
  it("lists every server, whom it follows and its clock, and exits 0 once they agree", async () => {
    let last: { code: number | null; out: string } = { code: -1, out: "" }
    for (let i = 0; i < 30 && last.code !== 0; i++) {
      last = await status([])
      if (last.code !== 0) await new Promise((r) => setTimeout(r, 500))
    }
    expect(last.code, last.out).toBe(0)
    expect(last.out).toMatch(/^SERVER +RANK +ADDRESS +FOLLOWS +TERM +CLOCK +RTT +OPS +BEHIND +LAG +REQ\/S$/m)
    // Each row: rank, address, whom it follows, term, clock, RTT, then ops held, ops behind, lag (or -), requests/s.
    for (const name of ["server-1", "server-2", "server-3"]) expect(last.out).toMatch(new RegExp(`^${name} +\\d+ +tcp://\\S+ +server-\\d( \\(itself\\))? +\\d+/\\d+ +[+-][\\d.]+ ms +\\d+ ms +\\d+ +0 +(-|[\\d.]+ ms) +[\\d.]+$`, "m"))
    expect(last.out).toMatch(/3 servers, all following server-\d/)
    type Row = { name: string; offsetMs: number; ops: number; vector: Record<string, number>; behindOps: number; gapOps: number; requestsPerSecond: number; serving: boolean }
    const json = JSON.parse((await status(["--json"])).out) as { agreed: boolean; coordinator: string; servers: Array<Row> }
    expect(json.agreed).toBe(true)
    expect(json.servers.map((s) => s.name)).toEqual(["server-1", "server-2", "server-3"])
    for (const s of json.servers) expect(Math.abs(s.offsetMs)).toBeLessThan(1_000)
    for (const s of json.servers) {
      expect(s.serving).toBe(true)
      expect(Number.isInteger(s.ops) && s.ops >= 0).toBe(true)
      expect(typeof s.vector).toBe("object")
      expect(s.behindOps).toBe(0)
      expect(s.gapOps).toBe(0)
      expect(s.requestsPerSecond).toBeGreaterThanOrEqual(0)
    }
  }, 30_000)

  it("shows each server's position, how far behind it is, and its request rate", async () => {
    // Writes through the broker (round-robin over the servers), then the position they reach everywhere.
    const writes = 30
    const client = spawnBulletin("client", ["client", "--json", "--broker", host, "--proxy", host, "--user", "counter", "--linger", "0"], {
      stdin: ["channel counted", ...Array.from({ length: writes }, (_, i) => `publish counted n${i}`), ""].join("\n"),
    })
    expect(await client.exited).toBe(0)
    type Row = { name: string; ops: number; vector: Record<string, number>; behindOps: number; requestsPerSecond: number }
    let rows: Array<Row> = []
    for (let i = 0; i < 20; i++) {
      rows = (JSON.parse((await status(["--json"])).out) as { servers: Array<Row> }).servers
      if (rows.every((r) => r.behindOps === 0 && r.ops === rows[0]!.ops)) break
      await new Promise((r) => setTimeout(r, 250))
    }
    // login (a user op), channel, the posts: held by every server, none behind.
    for (const r of rows) {
      expect(r.ops).toBeGreaterThanOrEqual(writes + 2)
      expect(r.behindOps).toBe(0)
      expect(Object.values(r.vector).reduce((a, b) => a + b, 0)).toBe(r.ops)
    }
    // The writes were just now: some server has answered at a measurable rate over its last seconds.
    expect(rows.some((r) => r.requestsPerSecond > 0)).toBe(true)
  }, 30_000)

  it("shows a server that does not answer, and exits 1", async () => {
    const stopped = cluster.servers[0]!
    stopped.child.kill("SIGSTOP")
    try {
      const r = await status(["--timeout", "400"])
      expect(r.code).toBe(1)
      expect(r.out).toMatch(/server-1 .*\(no answer within 400 ms\)/)
    } finally {
      stopped.child.kill("SIGCONT")
    }
  }, 30_000)

  it("says what it needs when it has no key", async () => {
    const p = spawnBulletin("status-nokey", ["status", "--reference", host], { env: { BULLETIN_CLUSTER_KEY: "" } })
    expect(await p.exited).toBe(1)
    expect(p.lines.join("\n")).toMatch(/no cluster key/)
  })
})
