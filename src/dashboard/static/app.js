// The bulletin dashboard: one page, no dependencies, nothing from the
// internet. Everything shown is derived from the servers' monitoring reports
// (live, over server-sent events, or from a recorded simulator trace) at a
// time `t`: live, `t` follows the newest report; in a replay, the scrubber
// sets it. Text that came from the network is only ever set as textContent.

const SVG = "http://www.w3.org/2000/svg"
const silentAfterMs = 3_000
const windowMs = 120_000
const palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"]
const machineTitles = { bully: "election (Bully)", berkeley: "clock sync (Berkeley)", replication: "replication", referenceHeartbeat: "heartbeat to the reference", coordinatorHeartbeat: "heartbeat to the coordinator" }

const $ = (id) => document.getElementById(id)
const el = (tag, attrs = {}, text) => {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v))
  if (text !== undefined) e.textContent = String(text)
  return e
}

const state = {
  mode: "live",
  controls: false,
  charts: [],
  reports: [], // ordered by `at` per server; all servers interleaved in arrival order
  notes: [],
  roles: null,
  t: 0,
  // live: the newest report's `at`, and when it arrived (to extrapolate t)
  lastAt: 0,
  lastArrival: 0,
  cards: new Map(),
  shown: new Map(), // server -> report drawn in its card (to animate what came after)
  trace: null,
  playing: false,
}

const reportsMax = 5_000
const fmtTime = (at) => {
  if (state.mode === "replay" && state.trace) return `${((at - state.trace.startAt) / 1000).toFixed(2)}s`
  const d = new Date(at)
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}:${String(d.getSeconds()).padStart(2, "0")}.${String(d.getMilliseconds()).padStart(3, "0")}`
}
const toast = (text) => ($("toast").textContent = text)

// --- what the reports say at time t ---------------------------------------------------------------
const serversAt = (t) => {
  const last = new Map()
  for (const r of state.reports) if (r.at <= t) last.set(r.server, r)
  for (const r of state.roles ?? []) if (r.name.startsWith("server") && !last.has(r.name)) last.set(r.name, undefined)
  return [...last.entries()].sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))
}
const roleOf = (name) => (state.roles ?? []).find((r) => r.name === name)
const condition = (name, r, t) => {
  const role = roleOf(name)
  if (role && role.state === "stopped") return "stopped"
  if (role && role.state === "frozen") return "frozen"
  if (r === undefined || t - r.at > silentAfterMs) return "silent"
  return r.coordinator === r.server ? "lead" : "follower"
}
const colourOf = (name) => {
  const names = [...new Set(state.reports.map((r) => r.server))].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))
  return palette[Math.max(0, names.indexOf(name)) % palette.length]
}

// --- state charts from the machine definitions --------------------------------------------------
// Laid out by ELK on the dashboard's server (src/dashboard/layout.ts): each chart comes with every
// state's box, every arrow's route and the box ELK placed its label in, sized for `layout.font`.
// Drawn at 1:1 (never scaled down, so text stays at its size): a chart wider than its card scrolls.

/** An orthogonal route with its corners rounded. */
const routePath = (points, radius = 5) => {
  if (points.length < 2) return ""
  let d = `M${points[0][0]},${points[0][1]}`
  for (let i = 1; i < points.length - 1; i++) {
    const [px, py] = points[i - 1]
    const [x, y] = points[i]
    const [nx, ny] = points[i + 1]
    const r = Math.min(radius, Math.hypot(x - px, y - py) / 2, Math.hypot(nx - x, ny - y) / 2)
    const ax = x - (Math.sign(x - px) * r)
    const ay = y - (Math.sign(y - py) * r)
    const bx = x + (Math.sign(nx - x) * r)
    const by = y + (Math.sign(ny - y) * r)
    d += ` L${ax},${ay} Q${x},${y} ${bx},${by}`
  }
  const [lx, ly] = points[points.length - 1]
  return `${d} L${lx},${ly}`
}

const drawChart = (chart) => {
  const { width, height, states, edges, fromAnywhere, font } = chart.layout
  const svg = el("svg:svg", { class: "statechart", width, height, viewBox: `0 0 ${width} ${height}`, style: `font-family: ${font.family}` })
  const defs = el("svg:defs")
  const marker = el("svg:marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 8, markerHeight: 8, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" })
  marker.append(el("svg:path", { d: "M0,0 L10,5 L0,10 z", fill: "#8b93a5" }))
  defs.append(marker)
  svg.append(defs)
  const stateEls = new Map()
  // Parents first (ELK lists them so), so a compound state's box lies under its children.
  for (const s of states) {
    const g = el("svg:g", { class: `st${s.compound ? " compound" : ""}`, "data-state": s.path })
    g.append(el("svg:rect", { x: s.box.x, y: s.box.y, width: s.box.w, height: s.box.h, rx: 6 }))
    const name = `${s.initial ? "● " : ""}${s.key}`
    const attrs = s.compound
      ? { x: s.label.x + font.padPx, y: s.label.y + s.label.h / 2, "dominant-baseline": "central" }
      : { x: s.box.x + s.box.w / 2, y: s.box.y + s.box.h / 2, "text-anchor": "middle", "dominant-baseline": "central" }
    g.append(el("svg:text", { ...attrs, "font-size": font.stateSizePx }, name))
    svg.append(g)
    stateEls.set(s.path, g)
  }
  // Arrows over the boxes: one per (source, target), labelled with every event that takes it.
  const grouped = new Map()
  const edgeEls = new Map()
  const lineHeight = font.labelSizePx * font.lineHeightEm
  for (const e of edges) {
    grouped.set(e.key, [{ source: e.source, target: e.target }])
    const g = el("svg:g", { class: "tr", "data-edge": e.key })
    // ELK draws a self-loop as a small square beside its state; a rounded loop, a little taller, reads better.
    const [p0, p1, , p3] = e.points
    const loop = e.source === e.target && e.points.length === 4 ? `M${p0[0]},${p0[1]} C${p1[0] - 4},${p0[1] - 10} ${p1[0] - 4},${p3[1] + 10} ${p3[0]},${p3[1]}` : undefined
    g.append(el("svg:path", { d: loop ?? routePath(e.points), "marker-end": "url(#arrow)" }))
    const text = el("svg:text", { "font-size": font.labelSizePx, "dominant-baseline": "central" })
    e.lines.forEach((line, i) => text.append(el("svg:tspan", { x: e.label.x + font.padPx, y: e.label.y + font.padPx + (i + 0.5) * lineHeight }, line)))
    g.append(text, el("svg:title", {}, e.title))
    svg.append(g)
    edgeEls.set(e.key, g)
  }
  return { svg, stateEls, edgeEls, fromAnywhere, grouped }
}

const setActive = (view, value) => {
  const paths = (value ?? "").split(",").filter(Boolean)
  const on = new Set()
  for (const p of paths) {
    const parts = p.split(".")
    for (let i = 1; i <= parts.length; i++) on.add(parts.slice(0, i).join("."))
  }
  for (const [path, g] of view.stateEls) g.classList.toggle("on", on.has(path))
  view.now.textContent = value ?? "—"
}

const within = (path, state) => state === path || state.startsWith(`${path}.`)
const fire = (view, from, to) => {
  // The arrow taken: the deepest source containing `from` whose target contains `to`.
  let best
  for (const [key, ts] of view.grouped) {
    const t = ts[0]
    if (from && within(t.source, from) && within(t.target, to) && (best === undefined || t.source.length + t.target.length > best.len)) best = { key, len: t.source.length + t.target.length }
  }
  if (best) {
    const g = view.edgeEls.get(best.key)
    g.classList.remove("fire")
    void g.getBoundingClientRect()
    g.classList.add("fire")
    setTimeout(() => g.classList.remove("fire"), 1_200)
  }
  const target = view.stateEls.get(to.split(",")[0])
  if (target) {
    target.classList.remove("entered")
    void target.getBoundingClientRect()
    target.classList.add("entered")
  }
}

// --- server cards -------------------------------------------------------------------------------
const card = (name) => {
  if (state.cards.has(name)) return state.cards.get(name)
  const root = el("article", { class: "card", "data-server": name })
  const head = el("header")
  const title = el("span", { class: "name" }, name)
  const role = el("span", { class: "role", "data-testid": "role" })
  const buttons = el("span", { class: "buttons" })
  if (state.controls) {
    for (const [action, label, help] of [
      ["stop", "Stop", "SIGKILL: a crash; stays down"],
      ["restart", "Restart", "start it (again)"],
      ["partition", "Partition", "SIGSTOP: frozen with connections open — a silent partition"],
      ["heal", "Heal", "SIGCONT: back on the network"],
    ]) {
      const b = el("button", { type: "button", "data-action": action, "data-server": name, "data-help": help, title: help }, label)
      b.addEventListener("click", () => control(name, action))
      buttons.append(b)
    }
  }
  head.append(title, role, buttons)
  const facts = el("div", { class: "facts" })
  root.append(head, facts)
  const views = new Map()
  // The charts side by side, wrapping; charts of the same machine (the two heartbeats) stacked in one column.
  const charts = el("div", { class: "charts" })
  const columns = new Map()
  for (const chart of state.charts) {
    if (!columns.has(chart.id)) columns.set(chart.id, charts.appendChild(el("div", { class: "column" })))
    const box = el("div", { class: "chart", "data-machine": chart.machine })
    const h3 = el("h3", {}, machineTitles[chart.machine] ?? chart.machine)
    const now = el("span", { class: "now" }, "—")
    h3.append(now)
    const view = drawChart(chart)
    view.now = now
    box.append(h3, view.svg)
    if (view.fromAnywhere.length > 0) box.append(el("div", { class: "any" }, `from any state: ${view.fromAnywhere.map((t) => `${t.event} → ${t.target}`).join("; ")}`))
    columns.get(chart.id).append(box)
    views.set(chart.machine, view)
  }
  root.append(charts)
  const c = { root, role, facts, views, buttons }
  state.cards.set(name, c)
  $("servers").append(root)
  return c
}

const control = async (role, action) => {
  toast(`${action} ${role}…`)
  try {
    const res = await fetch("/api/control", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ role, action }) })
    const body = await res.json()
    toast(res.ok ? body.message : `refused: ${body.error}`)
  } catch (e) {
    toast(`failed: ${e}`)
  }
}

/**
 * What a button can do to a process in this state (as `up` reports it): a stopped server can only be
 * restarted; a frozen one not partitioned again; only a frozen one healed; one between restarts has no
 * process to freeze. Without `up`'s status (not known yet), every button stays enabled.
 */
const applies = { stop: ["starting", "running", "frozen", "restarting"], restart: ["starting", "running", "stopped", "frozen", "restarting"], partition: ["starting", "running"], heal: ["frozen"] }
const enableButtons = (c, roleState) => {
  for (const b of c.buttons.querySelectorAll("button")) {
    const off = roleState !== undefined && !applies[b.dataset.action].includes(roleState)
    b.disabled = off
    b.title = off ? `${b.dataset.help} (not while ${roleState})` : b.dataset.help
  }
}

const drawCard = (name, r, t, animate) => {
  const c = card(name)
  const cond = condition(name, r, t)
  c.root.className = `card ${cond}`
  // For scripts and tests: who this server follows, and its rank.
  c.root.dataset.follows = r?.coordinator ?? ""
  c.root.dataset.rank = String(r?.rank ?? "")
  const roleText = { lead: "COORDINATOR", follower: r ? `follows ${r.coordinator ?? "nobody"}` : "", silent: "silent (no report for 3 s)", stopped: "stopped", frozen: "partitioned (frozen)" }[cond]
  c.role.textContent = roleText
  enableButtons(c, roleOf(name)?.state)
  if (r === undefined) {
    c.facts.textContent = "no report yet"
    return
  }
  const offset = `${r.offsetMs >= 0 ? "+" : ""}${r.offsetMs.toFixed(1)} ms`
  c.facts.textContent = `rank ${r.rank ?? "?"} · term ${r.term.epoch}/${r.term.rank} · reference ${r.referenceUp ? "up" : "UNREACHABLE"} · clock ${offset} · ${r.ops} ops · ${r.requestsPerSecond} req/s · peers ${r.peers.join(", ") || "none"}`
  const before = state.shown.get(name)
  state.shown.set(name, r)
  // Animate what happened since the report drawn last (live, or a replay playing forwards).
  const steps = []
  if (animate && before !== undefined && r.at > before.at) {
    for (const x of state.reports) if (x.server === name && x.at > before.at && x.at <= r.at) steps.push(...x.transitions)
  }
  const finalStates = r.states
  if (steps.length === 0 || steps.length > 40) {
    for (const [m, v] of c.views) setActive(v, finalStates[m])
    return
  }
  const spacing = Math.min(250, 900 / steps.length)
  steps.forEach((s, i) =>
    setTimeout(() => {
      const v = c.views.get(s.machine)
      if (v === undefined) return
      setActive(v, s.to === "(stopped)" ? undefined : s.to)
      fire(v, s.from, s.to)
    }, i * spacing),
  )
  setTimeout(() => { for (const [m, v] of c.views) setActive(v, state.shown.get(name)?.states[m]) }, steps.length * spacing + 50)
}

// --- topology -----------------------------------------------------------------------------------
const drawTopology = (servers, t) => {
  const svg = $("topology")
  svg.replaceChildren()
  svg.classList.add("topo")
  const node = (x, y, label, sub, cls) => {
    const g = el("svg:g", { class: `node ${cls}`, "data-node": label })
    g.append(el("svg:rect", { x: x - 52, y: y - 18, width: 104, height: 36, rx: 6 }))
    g.append(el("svg:text", { x, y: y - 2 }, label))
    g.append(el("svg:text", { x, y: y + 11, class: "sub" }, sub))
    svg.append(g)
  }
  const roleState = (n) => roleOf(n)?.state
  const infra = [
    ["broker", 90, "5555 / 5556"],
    ["reference", 280, "5559"],
    ["proxy", 470, "5557 / 5558"],
  ]
  const n = Math.max(1, servers.length)
  const xs = servers.map((_, i) => 40 + ((i + 0.5) * 480) / n)
  for (const [name, x] of infra) for (const sx of xs) svg.append(el("svg:line", { x1: x, y1: 48, x2: sx, y2: 142 }))
  for (const [name, x, sub] of infra) node(x, 30, name, state.roles ? `${sub} · ${roleState(name) ?? "?"}` : sub, roleState(name) === "running" || !state.roles ? "" : "stopped")
  servers.forEach(([name, r], i) => {
    const cond = condition(name, r, t)
    node(xs[i], 160, name, `${cond === "lead" ? "coordinator" : cond}${r?.rank !== undefined ? ` · rank ${r.rank}` : ""}`, cond)
  })
}

// --- plots --------------------------------------------------------------------------------------
// Each plot is drawn at the pixel size of its box (so its text is at its real size), with a few
// y ticks at round numbers, its legend beside it (each server's colour and latest value), and,
// while the pointer is over it, the nearest point's server, time and value under it.
const plots = [
  { id: "plot-offset", field: (r) => r.offsetMs, unit: "ms", signed: true },
  { id: "plot-rate", field: (r) => r.requestsPerSecond, unit: "req/s" },
  { id: "plot-ops", field: (r) => r.ops, unit: "ops" },
  { id: "plot-lag", field: (r) => r.lagP99Ms, unit: "ms" },
]
const hover = new Map() // plot id -> pointer position in the plot's pixels

/** About `count` ticks covering [lo, hi], at 1, 2 or 5 times a power of ten. */
const niceTicks = (lo, hi, count = 5) => {
  const raw = (hi - lo) / Math.max(1, count - 1)
  const power = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power
  const first = Math.floor(lo / step + 1e-9) * step
  const last = Math.ceil(hi / step - 1e-9) * step
  const ticks = []
  for (let v = first; v <= last + step / 2 && ticks.length < 20; v += step) ticks.push(Math.abs(v) < step / 1e6 ? 0 : v)
  return { ticks, decimals: Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) }
}
const fmtValue = (v, signed) => {
  const a = Math.abs(v)
  const text = v.toFixed(a >= 100 || Number.isInteger(v) ? 0 : a >= 10 ? 1 : 2)
  return signed && v > 0 ? `+${text}` : text
}

const drawPlot = (p, t) => {
  const svg = $(p.id)
  const panel = svg.closest(".panel")
  const legend = panel.querySelector(".legend")
  const readout = panel.querySelector(".readout")
  const from = t - windowMs
  const series = new Map()
  for (const r of state.reports) {
    if (r.at < from || r.at > t) continue
    const v = p.field(r)
    if (v === undefined || !Number.isFinite(v)) continue
    if (!series.has(r.server)) series.set(r.server, [])
    series.get(r.server).push([r.at, v])
  }
  const all = [...series.values()].flat().map(([, v]) => v)
  const { ticks, decimals } = niceTicks(Math.min(0, ...all), Math.max(1, ...all))
  const lo = ticks[0]
  const hi = ticks[ticks.length - 1]
  const W = Math.max(120, Math.round(svg.clientWidth || 240))
  const H = 150
  const labels = ticks.map((v) => v.toFixed(decimals))
  const L = 10 + Math.max(...labels.map((s) => s.length)) * 7
  const T = 8
  const B = 20
  const R = 8
  const x = (at) => L + ((at - from) / windowMs) * (W - L - R)
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B)
  const kids = []
  ticks.forEach((v, i) => {
    kids.push(el("svg:line", { x1: L, y1: y(v), x2: W - R, y2: y(v), class: v === 0 ? "axis" : "grid" }))
    kids.push(el("svg:text", { x: L - 4, y: y(v), class: "tick", "text-anchor": "end", "dominant-baseline": "central" }, labels[i]))
  })
  kids.push(el("svg:line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }))
  // Time ticks every 30 s, or 60 s, whichever leaves their labels room.
  const spanS = windowMs / 1000
  const everyS = [30, 60, spanS].find((e) => ((W - L - R) * e) / spanS >= 72) ?? spanS
  for (let s = spanS % everyS; s <= spanS; s += everyS) {
    const at = from + s * 1000
    kids.push(el("svg:line", { x1: x(at), y1: H - B, x2: x(at), y2: H - B + 3, class: "axis" }))
    kids.push(el("svg:text", { x: x(at), y: H - 4, class: "tick", "text-anchor": s === 0 ? "start" : s === spanS ? "end" : "middle" }, s === spanS ? "now" : `−${spanS - s} s`))
  }
  const items = []
  for (const [name, pts] of [...series].sort(([a], [b]) => a.localeCompare(b, undefined, { numeric: true }))) {
    const colour = colourOf(name)
    kids.push(el("svg:polyline", { points: pts.map(([a, v]) => `${x(a).toFixed(1)},${y(v).toFixed(1)}`).join(" "), fill: "none", stroke: colour, "stroke-width": 1.5 }))
    const li = el("li", { "data-server": name })
    li.append(el("span", { class: "swatch", style: `background:${colour}` }), document.createTextNode(name), el("span", { class: "value" }, fmtValue(pts[pts.length - 1][1], p.signed)))
    items.push(li)
  }
  // The point nearest the pointer (in pixels), marked, and read out under the plot.
  const h = hover.get(p.id)
  let text = series.size === 0 ? "no data yet" : "hover the plot for values"
  if (h !== undefined) {
    let best
    for (const [name, pts] of series) {
      for (const [at, v] of pts) {
        const d = Math.hypot(x(at) - h.x, y(v) - h.y)
        if (best === undefined || d < best.d) best = { d, name, at, v }
      }
    }
    if (best !== undefined) {
      kids.push(el("svg:line", { x1: x(best.at), y1: T, x2: x(best.at), y2: H - B, class: "cursor" }))
      kids.push(el("svg:circle", { cx: x(best.at), cy: y(best.v), r: 4, fill: colourOf(best.name), class: "mark" }))
      text = `${best.name} · ${fmtTime(best.at)} · ${fmtValue(best.v, p.signed)} ${p.unit}`
    }
  }
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`)
  svg.setAttribute("height", String(H))
  svg.replaceChildren(...kids)
  legend.replaceChildren(...items)
  readout.textContent = text
}

const drawPlots = (t) => {
  for (const p of plots) drawPlot(p, t)
}

const watchPlots = () => {
  for (const p of plots) {
    const svg = $(p.id)
    svg.addEventListener("pointermove", (e) => {
      const box = svg.getBoundingClientRect()
      hover.set(p.id, { x: e.clientX - box.left, y: e.clientY - box.top })
      drawPlot(p, state.t)
    })
    svg.addEventListener("pointerleave", () => {
      hover.delete(p.id)
      drawPlot(p, state.t)
    })
  }
}

// --- timeline -----------------------------------------------------------------------------------
const timeline = (t) => {
  const items = []
  const lastAt = new Map()
  for (const r of state.reports) {
    if (r.at > t) continue
    const prev = lastAt.get(r.server)
    if (prev !== undefined && r.at - prev > silentAfterMs) {
      items.push({ at: prev + silentAfterMs, cls: "fault", text: `${r.server} went silent (no report for ${silentAfterMs / 1000} s)` })
      items.push({ at: r.at, cls: "", text: `${r.server} reporting again` })
    }
    if (prev === undefined) items.push({ at: r.at, cls: "", text: `${r.server} reporting (rank ${r.rank ?? "?"})` })
    lastAt.set(r.server, r.at)
    for (const x of r.transitions) {
      if (x.machine !== "bully") continue
      if (x.to.startsWith("leader") && !x.from.startsWith("leader")) items.push({ at: x.at, cls: "lead", text: `${r.server} became COORDINATOR (${x.from} → ${x.to} on ${x.event})` })
      else if (x.to === "electing") items.push({ at: x.at, cls: "", text: `${r.server} holds an election (${x.from || "start"} → electing on ${x.event})` })
      else if (x.to === "follower" && x.from !== "follower") items.push({ at: x.at, cls: "", text: `${r.server} follows ${r.coordinator ?? "?"} (on ${x.event})` })
    }
  }
  for (const [name, at] of lastAt) if (t - at > silentAfterMs) items.push({ at: at + silentAfterMs, cls: "fault", text: `${name} went silent (no report for ${silentAfterMs / 1000} s)` })
  for (const n of state.notes) if (n.at <= t) items.push({ at: n.at, cls: /FAULT|CRASH|kill|frozen|FAIL/i.test(n.text) ? "fault" : "note", text: n.text })
  items.sort((a, b) => b.at - a.at)
  const ol = $("timeline")
  ol.replaceChildren(
    ...items.slice(0, 200).map((i) => {
      const li = el("li", { class: i.cls })
      li.append(el("time", {}, fmtTime(i.at)), document.createTextNode(i.text))
      return li
    }),
  )
}

// --- everything at time t -----------------------------------------------------------------------
const render = (animate) => {
  const t = state.t
  const servers = serversAt(t)
  const leaders = servers.filter(([n, r]) => condition(n, r, t) === "lead")
  const banner = $("banner")
  banner.classList.toggle("none", leaders.length === 0)
  banner.classList.toggle("split", leaders.length > 1)
  $("coordinator").textContent = leaders.length === 0 ? "none (election or no servers)" : leaders.map(([n]) => n).join(" and ") + (leaders.length > 1 ? " — TWO COORDINATORS" : "")
  $("term").textContent = leaders.length === 1 ? `term ${leaders[0][1].term.epoch}/${leaders[0][1].term.rank}` : ""
  drawTopology(servers, t)
  for (const [name, r] of servers) drawCard(name, r, t, animate)
  for (const [name, c] of state.cards) if (!servers.some(([n]) => n === name)) c.root.remove()
  drawPlots(t)
  const tbody = $("replication").tBodies[0]
  tbody.replaceChildren(
    ...servers.map(([name, r]) => {
      const tr = el("tr")
      const vector = r ? Object.entries(r.vector).map(([o, n]) => `${o}: ${n}`).join("  ") : ""
      const lag = r && r.lagP50Ms !== undefined ? `${r.lagP50Ms.toFixed(1)} / ${r.lagP99Ms.toFixed(1)} ms` : "—"
      for (const v of [name, r?.ops ?? "—", vector, lag, r?.requestsPerSecond ?? "—"]) tr.append(el("td", {}, v))
      return tr
    }),
  )
  timeline(t)
  if (state.mode === "replay") $("clock").textContent = `${((t - state.trace.startAt) / 1000).toFixed(2)} s / ${((state.trace.endAt - state.trace.startAt) / 1000).toFixed(1)} s`
}

let queued = false
const schedule = (animate) => {
  if (queued) return
  queued = true
  requestAnimationFrame(() => {
    queued = false
    render(animate)
  })
}

const addReport = (r) => {
  state.reports.push(r)
  if (state.reports.length > reportsMax) state.reports.splice(0, state.reports.length - reportsMax)
  if (r.at >= state.lastAt) {
    state.lastAt = r.at
    state.lastArrival = performance.now()
  }
}

// --- live ---------------------------------------------------------------------------------------
const live = () => {
  const source = new EventSource("/api/events")
  const status = $("status")
  source.addEventListener("open", () => {
    status.textContent = "live"
    status.classList.remove("down")
  })
  source.addEventListener("error", () => {
    status.textContent = "disconnected — retrying"
    status.classList.add("down")
  })
  source.addEventListener("backlog", (e) => {
    const b = JSON.parse(e.data)
    state.reports = []
    b.reports.forEach(addReport)
    state.notes = b.notes
    state.roles = b.roles
    state.t = state.lastAt
    schedule(false)
  })
  source.addEventListener("report", (e) => {
    addReport(JSON.parse(e.data))
    state.t = state.lastAt
    schedule(true)
  })
  source.addEventListener("note", (e) => {
    state.notes.push(JSON.parse(e.data))
    schedule(false)
  })
  source.addEventListener("roles", (e) => {
    state.roles = JSON.parse(e.data)
    schedule(false)
  })
  // Time goes on between reports: a server that stops reporting turns silent.
  setInterval(() => {
    if (state.lastAt === 0) return
    state.t = state.lastAt + (performance.now() - state.lastArrival)
    schedule(false)
  }, 1_000)
}

// --- replay -------------------------------------------------------------------------------------
const replay = async () => {
  const trace = await (await fetch("/api/trace")).json()
  state.trace = trace
  state.reports = [...trace.reports].sort((a, b) => a.at - b.at)
  state.notes = trace.notes
  state.t = trace.startAt
  $("replay").hidden = false
  $("status").textContent = "replay"
  const checks = $("checks")
  for (const c of trace.checks) checks.append(el("li", { style: `color:${c.ok ? "#2c9a55" : "#c8372d"}` }, `${c.ok ? "ok" : "FAIL"} ${c.name}: ${c.detail}`))
  const scrub = $("scrub")
  const span = Math.max(1, trace.endAt - trace.startAt)
  scrub.max = String(span)
  scrub.step = "10"
  scrub.addEventListener("input", () => {
    state.t = trace.startAt + Number(scrub.value)
    schedule(false)
  })
  const play = $("play")
  let last = 0
  const tick = (now) => {
    if (!state.playing) return
    const dt = last === 0 ? 0 : (now - last) * Number($("speed").value)
    last = now
    state.t = Math.min(trace.endAt, state.t + dt)
    scrub.value = String(state.t - trace.startAt)
    render(true)
    if (state.t >= trace.endAt) return stop()
    requestAnimationFrame(tick)
  }
  const stop = () => {
    state.playing = false
    play.textContent = "▶ play"
  }
  play.addEventListener("click", () => {
    if (state.playing) return stop()
    if (state.t >= trace.endAt) state.t = trace.startAt
    state.playing = true
    last = 0
    play.textContent = "❚❚ pause"
    requestAnimationFrame(tick)
  })
  render(false)
}

const main = async () => {
  const info = await (await fetch("/api/info")).json()
  state.mode = info.mode
  state.controls = info.controls
  $("title").textContent = info.title
  state.charts = await (await fetch("/api/charts")).json()
  watchPlots()
  if (info.mode === "replay") await replay()
  else live()
}

main().catch((e) => {
  $("status").textContent = `failed: ${e}`
  $("status").classList.add("down")
})
