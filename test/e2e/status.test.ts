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
    expect(last.out).toMatch(/^SERVER +RANK +ADDRESS +FOLLOWS +TERM +CLOCK +RTT/m)
    for (const name of ["server-1", "server-2", "server-3"]) expect(last.out).toMatch(new RegExp(`^${name} +\\d+ +tcp://`, "m"))
    expect(last.out).toMatch(/3 servers, all following server-\d/)
    const json = JSON.parse((await status(["--json"])).out) as { agreed: boolean; coordinator: string; servers: Array<{ name: string; offsetMs: number }> }
    expect(json.agreed).toBe(true)
    expect(json.servers.map((s) => s.name)).toEqual(["server-1", "server-2", "server-3"])
    for (const s of json.servers) expect(Math.abs(s.offsetMs)).toBeLessThan(1_000)
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
