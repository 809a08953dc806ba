import { describe, expect, it } from "vitest"
import { serverCharts } from "../../src/dashboard/charts.ts"
import { serveDashboard } from "../../src/dashboard/http.ts"
import { type Box, type LaidChart, chartFont, layoutCharts } from "../../src/dashboard/layout.ts"
import { DashboardHub } from "../../src/dashboard/hub.ts"

/**
 * The ELK layout of every state chart, checked on the boxes it answers (no
 * browser): no two labels (state names, arrow labels) overlap, no arrow label
 * lies on a state box, nothing leaves the chart, every label's box holds its
 * text at its font size, and every arrow runs from its source's border to its
 * target's. test/e2e/dashboard.test.ts checks the same on the page as drawn.
 */
const overlap = (a: Box, b: Box) => Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x) > 0.5 && Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y) > 0.5
const inside = (a: Box, b: Box, slack = 0.5) => a.x >= b.x - slack && a.y >= b.y - slack && a.x + a.w <= b.x + b.w + slack && a.y + a.h <= b.y + b.h + slack
const onBorder = ([x, y]: readonly [number, number], b: Box, slack = 1.5) =>
  x >= b.x - slack && x <= b.x + b.w + slack && y >= b.y - slack && y <= b.y + b.h + slack &&
  (Math.abs(x - b.x) <= slack || Math.abs(x - b.x - b.w) <= slack || Math.abs(y - b.y) <= slack || Math.abs(y - b.y - b.h) <= slack)
const fmt = (b: Box) => `(${b.x.toFixed(0)},${b.y.toFixed(0)} ${b.w.toFixed(0)}×${b.h.toFixed(0)})`

/** Every fault of one chart's layout, in words (empty when it is clean). */
const faults = (c: LaidChart): Array<string> => {
  const L = c.layout
  const found: Array<string> = []
  const chartBox = { x: 0, y: 0, w: L.width, h: L.height }
  const labels = [
    ...L.states.map((s) => ({ name: `state ${s.path}`, box: s.label, own: s.path })),
    ...L.edges.map((e) => ({ name: `label of ${e.key} (${e.lines.join(", ")})`, box: e.label, own: undefined as string | undefined })),
  ]
  for (let i = 0; i < labels.length; i++) {
    for (let j = i + 1; j < labels.length; j++) if (overlap(labels[i]!.box, labels[j]!.box)) found.push(`${labels[i]!.name} ${fmt(labels[i]!.box)} overlaps ${labels[j]!.name} ${fmt(labels[j]!.box)}`)
    if (!inside(labels[i]!.box, chartBox)) found.push(`${labels[i]!.name} ${fmt(labels[i]!.box)} leaves the chart (${L.width}×${L.height})`)
  }
  for (const l of labels) {
    for (const s of L.states) {
      // A state's name lies in its own box and its ancestors'; an arrow label may lie in a compound state, never on an atomic one.
      const mayLie = l.own === undefined ? s.compound : l.own === s.path || l.own.startsWith(`${s.path}.`)
      if (!mayLie && overlap(l.box, s.box)) found.push(`${l.name} ${fmt(l.box)} lies on state ${s.path} ${fmt(s.box)}`)
    }
  }
  for (const s of L.states) {
    const parent = L.states.find((p) => s.path.startsWith(`${p.path}.`) && !s.path.slice(p.path.length + 1).includes("."))
    if (parent !== undefined && !inside(s.box, parent.box)) found.push(`state ${s.path} ${fmt(s.box)} is not inside ${parent.path} ${fmt(parent.box)}`)
    if (!inside(s.box, chartBox)) found.push(`state ${s.path} leaves the chart`)
    if (!s.compound && !inside(s.label, s.box)) found.push(`the name of ${s.path} does not fit its box`)
    const text = `${s.initial ? "● " : ""}${s.key}`
    if (s.label.w < text.length * 0.602 * chartFont.stateSizePx) found.push(`the name box of ${s.path} is narrower than its text`)
  }
  for (const e of L.edges) {
    const longest = Math.max(...e.lines.map((l) => l.length))
    if (e.label.w < longest * 0.602 * chartFont.labelSizePx || e.label.h < e.lines.length * chartFont.labelSizePx) found.push(`the label box of ${e.key} is smaller than its text`)
    const from = L.states.find((s) => s.path === e.source)
    const to = L.states.find((s) => s.path === e.target)
    if (from === undefined || to === undefined || e.points.length < 2) {
      found.push(`arrow ${e.key} has no route`)
      continue
    }
    if (!onBorder(e.points[0]!, from.box)) found.push(`arrow ${e.key} does not start on ${e.source}'s border: ${e.points[0]} vs ${fmt(from.box)}`)
    if (!onBorder(e.points.at(-1)!, to.box)) found.push(`arrow ${e.key} does not end on ${e.target}'s border: ${e.points.at(-1)} vs ${fmt(to.box)}`)
  }
  return found
}

describe("the state charts' ELK layout", () => {
  it("has no overlapping, clipped or hidden labels and readable text in any chart", async () => {
    const started = performance.now()
    const charts = await layoutCharts(serverCharts())
    const tookMs = performance.now() - started
    console.log(`layout: ${charts.map((c) => `${c.machine} ${c.layout.width}×${c.layout.height}`).join(", ")} in ${tookMs.toFixed(0)} ms`)
    expect(chartFont.labelSizePx).toBeGreaterThanOrEqual(11)
    expect(chartFont.stateSizePx).toBeGreaterThanOrEqual(11)
    for (const c of charts) {
      // Everything the definition has is drawn: every state, and every (source, target) pair of its transitions.
      expect(new Set(c.layout.states.map((s) => s.path))).toEqual(new Set(c.states.map((s) => s.path)))
      expect(new Set(c.layout.edges.map((e) => e.key))).toEqual(new Set(c.transitions.filter((t) => t.source !== "").map((t) => `${t.source}>${t.target}`)))
      expect(faults(c), c.machine).toEqual([])
    }
    // The check can fail: one label moved onto another is found.
    const bully = charts.find((c) => c.machine === "bully")!
    const [a, b] = bully.layout.edges
    const moved: LaidChart = { ...bully, layout: { ...bully.layout, edges: [a!, { ...b!, label: { ...a!.label } }, ...bully.layout.edges.slice(2)] } }
    expect(faults(moved).some((f) => f.includes("overlaps"))).toBe(true)
  }, 20_000)

  it("is what the page gets from /api/charts", async () => {
    const served = await serveDashboard({ host: "127.81.16.3", port: 0, hub: new DashboardHub() })
    try {
      const charts = (await (await fetch(`${served.url}api/charts`)).json()) as Array<LaidChart>
      expect(charts.map((c) => c.machine)).toEqual(["bully", "berkeley", "replication", "referenceHeartbeat", "coordinatorHeartbeat"])
      for (const c of charts) {
        expect(c.layout.width).toBeGreaterThan(100)
        expect(c.layout.font.family).toBe(chartFont.family)
        expect(faults(c)).toEqual([])
      }
    } finally {
      await served.close()
    }
  }, 20_000)
})
