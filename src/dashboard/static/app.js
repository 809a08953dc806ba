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
const PAD = 8
const TITLE = 16
const GAP = 14
const ROW_GAP = 40
const widthMax = 400
const textWidth = (s) => s.length * 6.2 + 16

const layoutChart = (chart) => {
  const kids = (p) => chart.states.filter((s) => s.parent === p)
  const size = new Map()
  const measure = (s) => {
    const ch = kids(s.path)
    if (ch.length === 0) {
      size.set(s.path, { w: Math.max(60, textWidth(s.key)), h: 24 })
      return
    }
    ch.forEach(measure)
    const w = Math.max(textWidth(s.key), ch.reduce((a, c) => a + size.get(c.path).w, 0) + GAP * (ch.length - 1) + 2 * PAD)
    const h = TITLE + Math.max(...ch.map((c) => size.get(c.path).h)) + PAD
    size.set(s.path, { w, h })
  }
  const top = kids("")
  top.forEach(measure)
  const boxes = new Map()
  const place = (s, x, y) => {
    const { w, h } = size.get(s.path)
    boxes.set(s.path, { x, y, w, h, state: s })
    let cx = x + PAD
    for (const c of kids(s.path)) {
      place(c, cx, y + TITLE)
      cx += size.get(c.path).w + GAP
    }
  }
  // Top-level states in one row if they fit; else in layers by distance from
  // the initial state (so most arrows point down), each layer ordered by where
  // its predecessors sit, rows centred; rows leave room for the arrows' labels.
  const topOf = (path) => path.split(".")[0]
  let spacing = GAP * 3
  const widthOf = (row) => row.reduce((a, st) => a + size.get(st.path).w, 0) + spacing * (row.length - 1)
  let rows = [top]
  if (widthOf(top) > widthMax) {
    spacing = GAP * 5 // room for the labels of arrows running sideways within a layer
    const depth = new Map()
    const start = top.find((st) => st.initial) ?? top[0]
    depth.set(start.path, 0)
    const queue = [start.path]
    while (queue.length > 0) {
      const at = queue.shift()
      for (const t of chart.transitions) {
        if (t.source === "" || topOf(t.source) !== at) continue
        const to = topOf(t.target)
        if (!depth.has(to)) {
          depth.set(to, depth.get(at) + 1)
          queue.push(to)
        }
      }
    }
    const deepest = Math.max(...depth.values())
    rows = []
    for (const st of top) {
      const d = depth.get(st.path) ?? deepest + 1
      ;(rows[d] ??= []).push(st)
    }
    rows = rows.filter(Boolean)
    // Order each row by the mean position of its predecessors in the rows above.
    const order = new Map()
    rows[0].forEach((st, i) => order.set(st.path, i))
    for (let r = 1; r < rows.length; r++) {
      const weight = (st) => {
        const from = chart.transitions.filter((t) => t.source !== "" && topOf(t.target) === st.path && order.has(topOf(t.source))).map((t) => order.get(topOf(t.source)))
        return from.length === 0 ? Infinity : from.reduce((a, b) => a + b, 0) / from.length
      }
      rows[r].sort((a, b) => weight(a) - weight(b))
      rows[r].forEach((st, i) => order.set(st.path, i))
    }
  }
  const width = Math.max(200, ...rows.map(widthOf)) + 8
  let y = 16
  let rowH = 0
  for (const row of rows) {
    let x = 4 + (width - 8 - widthOf(row)) / 2
    rowH = 0
    for (const st of row) {
      place(st, x, y)
      x += size.get(st.path).w + spacing
      rowH = Math.max(rowH, size.get(st.path).h)
    }
    y += rowH + ROW_GAP
  }
  y -= ROW_GAP
  return { boxes, width, height: y + 16 }
}

const centre = (b) => ({ x: b.x + b.w / 2, y: b.y + b.h / 2 })
/** Where the segment from the box's centre towards p leaves the box. */
const exitPoint = (b, p) => {
  const c = centre(b)
  const dx = p.x - c.x
  const dy = p.y - c.y
  if (dx === 0 && dy === 0) return c
  const sx = dx === 0 ? Infinity : b.w / 2 / Math.abs(dx)
  const sy = dy === 0 ? Infinity : b.h / 2 / Math.abs(dy)
  const s = Math.min(sx, sy)
  return { x: c.x + dx * s, y: c.y + dy * s }
}
const short = (s, n = 26) => (s.length > n ? `${s.slice(0, n - 1)}…` : s)

const drawChart = (chart) => {
  const { boxes, width, height } = layoutChart(chart)
  const svg = el("svg:svg", { viewBox: `0 0 ${width} ${height}`, style: `width: 100%; max-width: ${Math.round(width * 1.4)}px` })
  const defs = el("svg:defs")
  const marker = el("svg:marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" })
  marker.append(el("svg:path", { d: "M0,0 L10,5 L0,10 z", fill: "#9aa3b5" }))
  defs.append(marker)
  svg.append(defs)
  const stateEls = new Map()
  const depth = (p) => (p === "" ? 0 : p.split(".").length)
  for (const [path, b] of [...boxes].sort(([a], [b2]) => depth(a) - depth(b2))) {
    const compound = chart.states.some((s) => s.parent === path)
    const g = el("svg:g", { class: `st${compound ? " compound" : ""}`, "data-state": path })
    g.append(el("svg:rect", { x: b.x, y: b.y, width: b.w, height: b.h, rx: 6 }))
    g.append(el("svg:text", { x: b.x + (compound ? 6 : b.w / 2), y: b.y + (compound ? 11 : b.h / 2 + 3.5), "text-anchor": compound ? "start" : "middle" }, `${b.state.initial ? "● " : ""}${b.state.key}`))
    svg.append(g)
    stateEls.set(path, g)
  }
  // One arrow per (source, target), labelled with every event that takes it.
  const grouped = new Map()
  const fromAnywhere = []
  for (const t of chart.transitions) {
    if (t.source === "") {
      fromAnywhere.push(t)
      continue
    }
    const key = `${t.source}>${t.target}`
    if (!grouped.has(key)) grouped.set(key, [])
    grouped.get(key).push(t)
  }
  const edgeEls = new Map()
  for (const [key, ts] of grouped) {
    const a = boxes.get(ts[0].source)
    const b = boxes.get(ts[0].target)
    if (a === undefined || b === undefined) continue
    const events = [...new Set(ts.map((t) => t.event))]
    const full = ts.map((t) => `${t.event}${t.guard ? ` [${t.guard}]` : ""}`).join("\n")
    const g = el("svg:g", { class: "tr", "data-edge": key })
    let d
    let lx
    let ly
    if (a === b) {
      const x0 = a.x + a.w - 14
      d = `M${x0},${a.y} C${x0 - 4},${a.y - 16} ${x0 + 18},${a.y - 16} ${x0 + 10},${a.y}`
      lx = x0 + 4
      ly = a.y - 14
    } else {
      const ca = centre(a)
      const cb = centre(b)
      const p = exitPoint(a, cb)
      const q = exitPoint(b, ca)
      const mx = (p.x + q.x) / 2
      const my = (p.y + q.y) / 2
      const len = Math.hypot(q.x - p.x, q.y - p.y) || 1
      const bend = 14
      const cx = mx + (-(q.y - p.y) / len) * bend
      const cy = my + ((q.x - p.x) / len) * bend
      d = `M${p.x},${p.y} Q${cx},${cy} ${q.x},${q.y}`
      // The label sits 40% along the curve, so the labels of A→B and B→A do not meet in the middle.
      const t = 0.4
      lx = (1 - t) ** 2 * p.x + 2 * t * (1 - t) * cx + t ** 2 * q.x
      ly = (1 - t) ** 2 * p.y + 2 * t * (1 - t) * cy + t ** 2 * q.y
    }
    g.append(el("svg:path", { d, "marker-end": "url(#arrow)" }))
    g.append(el("svg:text", { x: lx, y: ly, "text-anchor": "middle" }, short(events.join(", "))))
    g.append(el("svg:title", {}, full))
    svg.insertBefore(g, svg.children[1] ?? null)
    edgeEls.set(key, g)
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
      const b = el("button", { type: "button", "data-action": action, "data-server": name, title: help }, label)
      b.addEventListener("click", () => control(name, action))
      buttons.append(b)
    }
  }
  head.append(title, role, buttons)
  const facts = el("div", { class: "facts" })
  root.append(head, facts)
  const views = new Map()
  for (const chart of state.charts) {
    const box = el("div", { class: "chart", "data-machine": chart.machine })
    const h3 = el("h3", {}, machineTitles[chart.machine] ?? chart.machine)
    const now = el("span", { class: "now" }, "—")
    h3.append(now)
    const view = drawChart(chart)
    view.now = now
    box.append(h3, view.svg)
    if (view.fromAnywhere.length > 0) box.append(el("div", { class: "any" }, `from any state: ${view.fromAnywhere.map((t) => `${t.event} → ${t.target}`).join("; ")}`))
    root.append(box)
    views.set(chart.machine, view)
  }
  const c = { root, role, facts, views }
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

const drawCard = (name, r, t, animate) => {
  const c = card(name)
  const cond = condition(name, r, t)
  c.root.className = `card ${cond}`
  // For scripts and tests: who this server follows, and its rank.
  c.root.dataset.follows = r?.coordinator ?? ""
  c.root.dataset.rank = String(r?.rank ?? "")
  const roleText = { lead: "COORDINATOR", follower: r ? `follows ${r.coordinator ?? "nobody"}` : "", silent: "silent (no report for 3 s)", stopped: "stopped", frozen: "partitioned (frozen)" }[cond]
  c.role.textContent = roleText
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
const plot = (svg, field, t) => {
  svg.replaceChildren()
  const from = t - windowMs
  const series = new Map()
  for (const r of state.reports) {
    if (r.at < from || r.at > t) continue
    const v = field(r)
    if (v === undefined || !Number.isFinite(v)) continue
    if (!series.has(r.server)) series.set(r.server, [])
    series.get(r.server).push([r.at, v])
  }
  const all = [...series.values()].flat().map(([, v]) => v)
  let lo = Math.min(0, ...all)
  let hi = Math.max(1, ...all)
  if (hi - lo < 1e-9) hi = lo + 1
  const W = 300
  const H = 140
  const L = 38
  const B = 14
  const x = (at) => L + ((at - from) / windowMs) * (W - L - 4)
  const y = (v) => 4 + (1 - (v - lo) / (hi - lo)) * (H - B - 8)
  svg.append(el("svg:line", { x1: L, y1: 4, x2: L, y2: H - B, class: "axis" }), el("svg:line", { x1: L, y1: y(0), x2: W - 4, y2: y(0), class: "axis" }))
  svg.append(el("svg:text", { x: 2, y: 10 }, hi.toFixed(hi < 10 ? 1 : 0)), el("svg:text", { x: 2, y: H - B }, lo.toFixed(Math.abs(lo) < 10 ? 1 : 0)))
  svg.append(el("svg:text", { x: L, y: H - 2 }, `-${windowMs / 1000}s`), el("svg:text", { x: W - 30, y: H - 2 }, "now"))
  let ly = 12
  for (const [name, pts] of series) {
    const colour = colourOf(name)
    svg.append(el("svg:polyline", { points: pts.map(([a, v]) => `${x(a).toFixed(1)},${y(v).toFixed(1)}`).join(" "), fill: "none", stroke: colour, "stroke-width": 1.5 }))
    svg.append(el("svg:text", { x: W - 70, y: ly, fill: colour, style: `fill:${colour}` }, name))
    ly += 10
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
  plot($("plot-offset"), (r) => r.offsetMs, t)
  plot($("plot-rate"), (r) => r.requestsPerSecond, t)
  plot($("plot-ops"), (r) => r.ops, t)
  plot($("plot-lag"), (r) => r.lagP99Ms, t)
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
  if (info.mode === "replay") await replay()
  else live()
}

main().catch((e) => {
  $("status").textContent = `failed: ${e}`
  $("status").classList.add("down")
})
