import { describe, expect, it } from "vitest"
import { RateWindow, ServerMetrics, serviceLabel, statusLabel } from "../../src/actors/metrics.ts"

describe("metric labels", () => {
  it("keep the client services, and map anything else to 'unknown'", () => {
    for (const s of ["login", "users", "channel", "channels", "publish", "message", "history"]) expect(serviceLabel(s)).toBe(s)
    for (const s of [undefined, "", "error", "nope", "constructor", "__proto__", "toString", "publish ", "PUBLISH", "x".repeat(10_000)]) expect(serviceLabel(s)).toBe("unknown")
  })

  it("say how a reply went", () => {
    expect(statusLabel({ status: "OK" })).toBe("ok")
    expect(statusLabel({ status: "sucesso" })).toBe("ok")
    expect(statusLabel({ status: "erro" })).toBe("error")
    expect(statusLabel({ status: "erro", retry: true })).toBe("retry")
    expect(statusLabel({ status: "erro", retry: true, busy: true })).toBe("busy")
  })

  it("stay bounded whatever services a client makes up", () => {
    const m = new ServerMetrics()
    for (let i = 0; i < 10_000; i++) m.request(`made-up-${i}`, i % 2 === 0 ? "error" : "busy", 0.001)
    m.request("publish", "ok", 0.002)
    const text = m.render()
    const series = text.split("\n").filter((l) => l.startsWith("bulletin_requests_total{"))
    expect(series.sort()).toEqual([
      'bulletin_requests_total{service="publish",status="ok"} 1',
      'bulletin_requests_total{service="unknown",status="busy"} 5000',
      'bulletin_requests_total{service="unknown",status="error"} 5000',
    ])
    expect(text).toContain('bulletin_request_duration_seconds_count{service="unknown"} 10000')
    expect(text).toContain('bulletin_request_duration_seconds_bucket{service="publish",le="0.0025"} 1')
    expect(text).toContain('bulletin_request_duration_seconds_bucket{service="publish",le="0.001"} 0')
  })

  it("keep each server's registry its own (the simulator runs several in one process)", () => {
    const a = new ServerMetrics()
    const b = new ServerMetrics()
    a.opsApplied("own", 3)
    expect(a.render()).toContain('bulletin_ops_applied_total{source="own"} 3')
    expect(b.render()).toContain('bulletin_ops_applied_total{source="own"} 0')
  })
})

describe("a rate window", () => {
  it("gives events per second over its last seconds, and forgets older ones", () => {
    const w = new RateWindow(0, 5_000, 1_000)
    expect(w.perSecond(0)).toBe(0)
    for (let t = 0; t < 5_000; t += 100) w.add(t) // 10/s for 5 s
    expect(w.perSecond(5_000)).toBeCloseTo(10, 0)
    // Quiet for 10 s: nothing left in the window.
    expect(w.perSecond(15_000)).toBe(0)
    w.add(15_000, 20)
    expect(w.perSecond(15_500)).toBeCloseTo(20 / 4.5, 1)
  })
})
