import { describe, expect, it } from "vitest"
import { chartOf, serverCharts } from "../../src/dashboard/charts.ts"
import { DashboardHub } from "../../src/dashboard/hub.ts"
import { serveDashboard } from "../../src/dashboard/http.ts"
import { bullyMachine } from "../../src/machines/bully.ts"
import type { MonitorReport } from "../../src/actors/monitor.ts"

const report = (server: string, at: number): MonitorReport => ({
  server, at, rank: 1, coordinator: server, term: { epoch: 1, rank: 1 }, referenceUp: true, peers: [], states: { bully: "leader.announcing" },
  offsetMs: 0, ops: 0, vector: {}, lagP50Ms: undefined, lagP99Ms: undefined, requestsPerSecond: 0, transitions: [], transitionsDropped: 0,
})

describe("state charts from the machine definitions", () => {
  it("has every bully state and transition, eventless and delayed ones included", () => {
    const c = chartOf("bully", bullyMachine)
    expect(c.states.map((s) => s.path)).toEqual(["starting", "electing", "waiting", "leader", "leader.announcing", "follower"])
    expect(c.states.filter((s) => s.initial).map((s) => s.path)).toEqual(["starting", "leader.announcing"])
    const edges = c.transitions.map((t) => `${t.source} -> ${t.target} on ${t.event}${t.guard === undefined ? "" : ` [${t.guard}]`}`)
    expect(edges).toContain("electing -> leader on always [noHigherPeers]")
    expect(edges).toContain("electing -> leader on after electionTimeout")
    expect(edges).toContain("follower -> electing on COORDINATOR_DOWN [isCoordinatorDown]")
    // Every arrow joins two states that exist.
    for (const chart of serverCharts()) {
      const paths = new Set(["", ...chart.states.map((s) => s.path)])
      for (const t of chart.transitions) expect(paths.has(t.source) && paths.has(t.target)).toBe(true)
    }
  })
})

describe("dashboard web server", () => {
  it("keeps a bounded backlog and streams it, then live reports, to a page", async () => {
    const hub = new DashboardHub({ reportsMax: 3 })
    for (let i = 0; i < 5; i++) hub.report(report("s1", i))
    const served = await serveDashboard({ host: "127.0.0.1", port: 0, hub })
    try {
      const res = await fetch(`${served.url}api/events`)
      const reader = res.body!.getReader()
      let text = ""
      const until = async (f: () => boolean) => {
        while (!f()) text += new TextDecoder().decode((await reader.read()).value)
      }
      await until(() => text.includes("event: backlog") && text.endsWith("\n\n"))
      const backlog = JSON.parse(/event: backlog\ndata: (.*)\n/.exec(text)![1]!) as { reports: Array<MonitorReport> }
      expect(backlog.reports.map((r) => r.at)).toEqual([2, 3, 4])
      hub.report(report("s2", 9))
      await until(() => text.includes("event: report"))
      expect(text).toContain('"server":"s2"')
      await reader.cancel()
    } finally {
      await served.close()
    }
  })

  it("answers bad control requests with clear errors, and has no controls without `up`", async () => {
    const done: Array<string> = []
    const served = await serveDashboard({ host: "127.0.0.1", port: 0, hub: new DashboardHub(), control: (role, action) => {
      if (role !== "server-1") throw new Error(`no role named '${role}'`)
      done.push(`${action} ${role}`)
      return "ok"
    } })
    const bare = await serveDashboard({ host: "127.0.0.1", port: 0, hub: new DashboardHub() })
    try {
      const post = (base: string, body: string, type = "application/json") => fetch(`${base}api/control`, { method: "POST", headers: { "content-type": type }, body }).then(async (r) => ({ status: r.status, body: (await r.json()) as { error?: string } }))
      expect(await post(served.url, '{"role":"server-1","action":"stop"}', "text/plain")).toMatchObject({ status: 415 })
      expect(await post(served.url, "{not json")).toMatchObject({ status: 400 })
      expect(await post(served.url, '{"role":"server-1","action":"explode"}')).toMatchObject({ status: 400 })
      expect(await post(served.url, "x".repeat(10_000))).toMatchObject({ status: 413 })
      expect(await post(served.url, '{"role":"server-9","action":"stop"}')).toMatchObject({ status: 409, body: { error: "no role named 'server-9'" } })
      expect(await post(served.url, '{"role":"server-1","action":"partition"}')).toMatchObject({ status: 200 })
      expect(done).toEqual(["partition server-1"])
      expect(await post(bare.url, '{"role":"server-1","action":"stop"}')).toMatchObject({ status: 404 })
      expect((await fetch(`${served.url}api/trace`)).status).toBe(404)
      expect((await fetch(`${served.url}nope`)).status).toBe(404)
    } finally {
      await served.close()
      await bare.close()
    }
  })
})

describe("dashboard limits (issue 13)", () => {
  it("answers only requests for its own host name (no DNS rebinding)", async () => {
    const served = await serveDashboard({ host: "127.0.0.1", port: 0, hub: new DashboardHub(), control: () => "ok" })
    try {
      const port = new URL(served.url).port
      const { request } = await import("node:http")
      const ask = (hostHeader: string) =>
        new Promise<number>((done, fail) => {
          const r = request({ host: "127.0.0.1", port, path: "/api/info", headers: { host: hostHeader } }, (res) => {
            res.resume()
            done(res.statusCode!)
          })
          r.on("error", fail)
          r.end()
        })
      expect(await ask(`127.0.0.1:${port}`)).toBe(200)
      expect(await ask(`localhost:${port}`)).toBe(200)
      expect(await ask(`evil.example:${port}`)).toBe(421)
      expect(await ask(`127.0.0.1.nip.io:${port}`)).toBe(421)
    } finally {
      await served.close()
    }
  })

  it("gives a page a backlog of at most backlogMaxBytes, the latest reports", async () => {
    const hub = new DashboardHub({ backlogMaxBytes: 10_000 })
    for (let i = 0; i < 3_000; i++) hub.report(report(`s${i % 3}`, i))
    const served = await serveDashboard({ host: "127.0.0.1", port: 0, hub })
    try {
      const res = await fetch(`${served.url}api/events`)
      const reader = res.body!.getReader()
      let text = ""
      while (!(text.includes("event: backlog") && text.endsWith("\n\n"))) text += new TextDecoder().decode((await reader.read()).value)
      const data = /event: backlog\ndata: (.*)\n/.exec(text)![1]!
      expect(data.length).toBeLessThan(12_000)
      const backlog = JSON.parse(data) as { reports: Array<MonitorReport> }
      expect(backlog.reports.at(-1)!.at).toBe(2_999)
      expect(backlog.reports.length).toBeGreaterThan(10)
      await reader.cancel()
    } finally {
      await served.close()
    }
  })
})
