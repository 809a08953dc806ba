import type { ELK as ElkApi, ElkExtendedEdge, ElkLabel, ElkNode } from "elkjs/lib/elk-api.js"
import type { Chart, ChartTransition } from "./charts.ts"

/**
 * The state charts laid out by ELK (the Eclipse Layout Kernel, what the
 * Stately visualizer uses): layered, top to bottom, compound states as
 * nested graphs, orthogonal arrows, and each arrow's label placed by ELK
 * itself as a box of the size we give it, so no label meets another label,
 * a state box or the chart's edge. The machines are static: each chart is
 * laid out once, in Node, when the dashboard starts; the page only draws
 * the boxes, routes and label positions it is sent.
 *
 * The label sizes are measured for `chartFont`: a monospace font (state and
 * event names are identifiers), whose every glyph advances 0.6 em in DejaVu
 * Sans Mono, Liberation Mono, Menlo and Courier and less in Consolas, so a
 * box `charWidthEm` per character wide holds the text in any of them.
 */
export const chartFont = {
  family: `"DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace`,
  stateSizePx: 12,
  labelSizePx: 11,
  /** Per character, a little over the 0.602 em of DejaVu Sans Mono. */
  charWidthEm: 0.62,
  lineHeightEm: 1.25,
} as const

export interface Box {
  readonly x: number
  readonly y: number
  readonly w: number
  readonly h: number
}

export interface LaidState {
  readonly path: string
  readonly key: string
  readonly initial: boolean
  readonly compound: boolean
  readonly box: Box
  /** Where the state's name is written (a compound state's at its top left). */
  readonly label: Box
}

export interface LaidEdge {
  /** `source>target`: one arrow for every event that takes the same way. */
  readonly key: string
  readonly source: string
  readonly target: string
  /** The label's lines: one event a line. */
  readonly lines: ReadonlyArray<string>
  /** Every event with its guard, for the tooltip. */
  readonly title: string
  /** The route: start, bends, end (the arrow head at the end). */
  readonly points: ReadonlyArray<readonly [number, number]>
  readonly label: Box
}

export interface ChartLayout {
  readonly width: number
  readonly height: number
  readonly states: ReadonlyArray<LaidState>
  readonly edges: ReadonlyArray<LaidEdge>
  /** Transitions with no source state (taken from any state): written under the chart. */
  readonly fromAnywhere: ReadonlyArray<ChartTransition>
  /** What the label boxes were measured for: the page writes the text so. */
  readonly font: typeof chartFont & { readonly padPx: number }
}

export type LaidChart = Chart & { readonly layout: ChartLayout }

/**
 * ELK itself (1.6 MB of JavaScript, a quarter second to load), loaded when first needed. The bundle is
 * CommonJS whose module.exports is the class; its .d.ts says `export default`, which NodeNext reads as
 * `module.exports.default`. Either way, the class.
 */
const loadElk = async (): Promise<ElkApi> => {
  const bundle = (await import("elkjs/lib/elk.bundled.js")).default as unknown as { new (): ElkApi; default?: new () => ElkApi }
  const Elk = bundle.default ?? bundle
  return new Elk()
}

const labelPadPx = 3
const statePadXPx = 10
const stateHeightPx = 26
const chartMarginPx = 6

/** The box a text of these lines takes at this size (padding included). */
export const textBox = (lines: ReadonlyArray<string>, sizePx: number) => ({
  width: Math.ceil(Math.max(...lines.map((l) => l.length)) * chartFont.charWidthEm * sizePx + 2 * labelPadPx),
  height: Math.ceil(lines.length * chartFont.lineHeightEm * sizePx + 2 * labelPadPx),
})

const stateName = (key: string, initial: boolean) => `${initial ? "● " : ""}${key}`

const layoutOptions = {
  "elk.algorithm": "layered",
  "elk.direction": "DOWN",
  "elk.hierarchyHandling": "INCLUDE_CHILDREN",
  "elk.edgeRouting": "ORTHOGONAL",
  "elk.edgeLabels.placement": "CENTER",
  "elk.layered.edgeLabels.sideSelection": "SMART_DOWN",
  "elk.spacing.nodeNode": "20",
  "elk.layered.spacing.nodeNodeBetweenLayers": "24",
  "elk.spacing.edgeNode": "16",
  "elk.spacing.edgeEdge": "8",
  "elk.spacing.edgeLabel": "4",
  "elk.spacing.labelNode": "6",
  "elk.spacing.labelLabel": "6",
  "elk.layered.spacing.edgeNodeBetweenLayers": "12",
  "elk.layered.spacing.edgeEdgeBetweenLayers": "8",
  "elk.layered.nodePlacement.strategy": "NETWORK_SIMPLEX",
  "elk.layered.crossingMinimization.strategy": "LAYER_SWEEP",
  "elk.layered.considerModelOrder.strategy": "NODES_AND_EDGES",
  "elk.padding": `[top=${chartMarginPx},left=${chartMarginPx},bottom=${chartMarginPx},right=${chartMarginPx}]`,
  // Every position in the answer relative to the root, so the page needs no sums.
  "elk.json.shapeCoords": "ROOT",
  "elk.json.edgeCoords": "ROOT",
}

/** The ELK graph of one chart: nested nodes, and one edge a (source, target) pair. */
const graphOf = (chart: Chart) => {
  const grouped = new Map<string, Array<ChartTransition>>()
  for (const t of chart.transitions) {
    if (t.source === "") continue
    const key = `${t.source}>${t.target}`
    grouped.set(key, [...(grouped.get(key) ?? []), t])
  }
  const nodeOf = (path: string, key: string, initial: boolean): ElkNode => {
    const children = chart.states.filter((s) => s.parent === path).map((s) => nodeOf(s.path, s.key, s.initial))
    const size = textBox([stateName(key, initial)], chartFont.stateSizePx)
    const label: ElkLabel = { id: `label:${path}`, text: stateName(key, initial), ...size }
    if (children.length === 0) return { id: path, width: size.width + 2 * statePadXPx, height: stateHeightPx, labels: [label] }
    return {
      id: path,
      labels: [label],
      children,
      layoutOptions: {
        "elk.padding": `[top=${size.height + 10},left=12,bottom=12,right=12]`,
        "elk.nodeLabels.placement": "[H_LEFT, V_TOP, INSIDE]",
        "elk.nodeSize.constraints": "[NODE_LABELS, MINIMUM_SIZE]",
        "elk.nodeSize.minimum": `(${size.width + 24}, ${size.height + 20})`,
      },
    }
  }
  const edges: Array<ElkExtendedEdge> = [...grouped].map(([key, ts]) => {
    const lines = [...new Set(ts.map((t) => t.event))]
    return { id: key, sources: [ts[0]!.source], targets: [ts[0]!.target], labels: [{ id: `label:${key}`, text: lines.join("\n"), ...textBox(lines, chartFont.labelSizePx) }] }
  })
  const graph: ElkNode = { id: "", layoutOptions, children: chart.states.filter((s) => s.parent === "").map((s) => nodeOf(s.path, s.key, s.initial)), edges }
  return { graph, grouped }
}

const boxOf = (s: { x?: number; y?: number; width?: number; height?: number }): Box => ({ x: s.x ?? 0, y: s.y ?? 0, w: s.width ?? 0, h: s.height ?? 0 })

export const layoutChart = async (chart: Chart, elk?: ElkApi): Promise<ChartLayout> => {
  const { graph, grouped } = graphOf(chart)
  const laid = await (elk ?? (await loadElk())).layout(graph)
  const states: Array<LaidState> = []
  const walk = (n: ElkNode) => {
    for (const c of n.children ?? []) {
      const s = chart.states.find((x) => x.path === c.id)!
      const compound = (c.children ?? []).length > 0
      const box = boxOf(c)
      const lbl = c.labels?.[0]
      // An atomic state's name is centred in its box; a compound one's sits where ELK put it (top left, inside).
      const size = textBox([stateName(s.key, s.initial)], chartFont.stateSizePx)
      const label = compound && lbl !== undefined ? boxOf(lbl) : { x: box.x + (box.w - size.width) / 2, y: box.y + (box.h - size.height) / 2, w: size.width, h: size.height }
      states.push({ path: s.path, key: s.key, initial: s.initial, compound, box, label })
      walk(c)
    }
  }
  walk(laid)
  const edges: Array<LaidEdge> = []
  const collect = (n: ElkNode) => {
    for (const e of n.edges ?? []) {
      const ts = grouped.get(e.id)!
      const points: Array<readonly [number, number]> = []
      for (const s of e.sections ?? []) {
        for (const p of [s.startPoint, ...(s.bendPoints ?? []), s.endPoint]) {
          const last = points.at(-1)
          if (last === undefined || last[0] !== p.x || last[1] !== p.y) points.push([p.x, p.y])
        }
      }
      edges.push({
        key: e.id,
        source: ts[0]!.source,
        target: ts[0]!.target,
        lines: [...new Set(ts.map((t) => t.event))],
        title: ts.map((t) => `${t.event}${t.guard === undefined ? "" : ` [${t.guard}]`}`).join("\n"),
        points,
        label: boxOf(e.labels![0]!),
      })
    }
    for (const c of n.children ?? []) collect(c)
  }
  collect(laid)
  return { width: Math.ceil(laid.width ?? 0), height: Math.ceil(laid.height ?? 0), states, edges, fromAnywhere: chart.transitions.filter((t) => t.source === ""), font: { ...chartFont, padPx: labelPadPx } }
}

/** Every chart laid out, once per process (the machine definitions do not change while it runs). */
let laidOut: Promise<ReadonlyArray<LaidChart>> | undefined
export const layoutCharts = async (charts: ReadonlyArray<Chart>): Promise<ReadonlyArray<LaidChart>> => {
  const elk = await loadElk()
  return Promise.all(charts.map(async (c) => ({ ...c, layout: await layoutChart(c, elk) })))
}
/** The server's charts laid out, computed on the first call; a failure is not kept (the next call tries again). */
export const laidOutServerCharts = (charts: () => ReadonlyArray<Chart>): Promise<ReadonlyArray<LaidChart>> => {
  laidOut ??= layoutCharts(charts()).catch((e: unknown) => {
    laidOut = undefined
    throw e
  })
  return laidOut
}
