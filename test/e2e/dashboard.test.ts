import { existsSync, mkdirSync, mkdtempSync } from "node:fs"
import { copyFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { type Browser, type Locator, type Page, chromium } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { serveDashboard } from "../../src/dashboard/http.ts"
import type { Trace } from "../../src/dashboard/trace.ts"
import { runScenario } from "../../src/sim/cluster.ts"
import { generateScenario } from "../../src/sim/scenario.ts"
import { type Proc, spawnBulletin, stopAll } from "../support/procs.ts"

/**
 * The dashboard in a real browser (Debian's Chromium, driven by
 * playwright-core), on a real local cluster run by `bulletin up`: the page
 * names the coordinator and highlights its election chart; a click on its
 * Stop button kills it; the page then names a new coordinator, whose chart
 * moves to `leader`; Restart brings the old one back and, as the highest
 * rank, coordinator again; Partition freezes a follower and Heal resumes it.
 * Along the way: no label of any state chart overlaps another, is clipped or
 * lies on a state box, or is drawn under 11 px (ELK's layout as drawn); the
 * plots have their legend beside them, a few y ticks and a hover readout; a
 * button that cannot apply (Stop on a stopped server) is disabled.
 *
 * Screenshots go to the test's temporary folder (printed); with
 * BULLETIN_SCREENSHOTS=DIR they are also copied there (docs/screenshots for
 * the README).
 */
const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"
const available = existsSync(chromiumPath)
if (!available) console.warn(`dashboard browser test SKIPPED: no Chromium at ${chromiumPath} (scripts/setup.sh installs Debian's chromium as root)`)

const host = "127.81.16.1"
const serverBase = "127.81.16.11"
const dir = mkdtempSync(join(tmpdir(), "bulletin-dashboard-"))
let up: Proc
let browser: Browser
let page: Page
let url: string

/** The page's top (what a 1400×1000 window shows), the whole page, or one element (a server's card). */
const shot = async (name: string, what: "top" | "full" | Locator = "top") => {
  const file = join(dir, `${name}.png`)
  if (what === "top") await page.evaluate("window.scrollTo(0, 0)")
  if (typeof what === "string") await page.screenshot({ path: file, fullPage: what === "full" })
  else await what.screenshot({ path: file })
  const copyTo = process.env.BULLETIN_SCREENSHOTS
  if (copyTo !== undefined) {
    mkdirSync(copyTo, { recursive: true })
    copyFileSync(file, resolve(copyTo, `${name}.png`))
  }
  console.log(`dashboard: screenshot ${file}`)
}

const coordinator = async () => (await page.textContent("[data-testid=coordinator]"))?.trim() ?? ""
const until = async (what: string, f: () => Promise<boolean>, timeoutMs: number) => {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    if (await f()) return performance.now()
    if (performance.now() > deadline) {
      await shot(`failed-${what.replace(/\W+/g, "-")}`, "full")
      throw new Error(`timed out waiting for ${what}; coordinator shown: '${await coordinator()}'; last up lines:\n${up.lines.slice(-15).join("\n")}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
}
const isServer = (s: string) => /^server-\d$/.test(s)
/** Every card follows the coordinator shown, and it has the highest rank. */
const agreedOnHighest = async () => {
  const shown = await coordinator()
  const cards = await page.locator(".card[data-server]").evaluateAll((els) => els.map((e) => ({ name: e.getAttribute("data-server"), follows: e.getAttribute("data-follows"), rank: Number(e.getAttribute("data-rank")) })))
  if (!isServer(shown) || cards.length !== 3 || !cards.every((c) => c.follows === shown)) return false
  return cards.find((c) => c.name === shown)?.rank === Math.max(...cards.map((c) => c.rank))
}
interface Rect { readonly left: number; readonly right: number; readonly top: number; readonly bottom: number; readonly x: number; readonly y: number; readonly width: number; readonly height: number }
/** The little of the DOM the check uses (this project compiles without the DOM's types). */
interface Elem {
  getBoundingClientRect(): Rect
  getAttribute(name: string): string | null
  closest(selector: string): Elem | null
  querySelector(selector: string): Elem | null
  querySelectorAll(selector: string): Iterable<Elem>
  readonly classList: { contains(c: string): boolean }
  readonly textContent: string | null
  readonly viewBox: { readonly baseVal: { readonly width: number } }
}
/**
 * Every fault of the state charts as drawn, from the bounding boxes of every state name and arrow label
 * (their <text> elements) in every chart's SVG: two that overlap, one clipped by the chart's box (or by
 * its scrolling frame), one lying on a state box (a name may lie in its own box and its ancestors'; an
 * arrow label in a compound state, never on an atomic one), text drawn under 11 px.
 */
const chartFaults = (p: Page) =>
  p.locator(".card[data-server] .chart svg").evaluateAll((els) => {
    const svgs = els as unknown as Array<Elem>
    const style = (e: Elem) => (globalThis as unknown as { getComputedStyle(e: Elem): { fontSize: string } }).getComputedStyle(e)
    const found: Array<string> = []
    const overlap = (a: Rect, b: Rect) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5 && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5
    const inside = (a: Rect, b: Rect) => a.left >= b.left - 0.5 && a.top >= b.top - 0.5 && a.right <= b.right + 0.5 && a.bottom <= b.bottom + 0.5
    const fmt = (r: Rect) => `(${r.x.toFixed(0)},${r.y.toFixed(0)} ${r.width.toFixed(0)}×${r.height.toFixed(0)})`
    for (const svg of svgs) {
      const where = `${svg.closest(".card")?.getAttribute("data-server")}/${svg.closest(".chart")?.getAttribute("data-machine")}`
      const box = svg.getBoundingClientRect()
      const frame = svg.closest(".chart")!.getBoundingClientRect()
      const scale = box.width / svg.viewBox.baseVal.width
      const states = [...svg.querySelectorAll("g.st")].map((g) => ({ path: g.getAttribute("data-state")!, compound: g.classList.contains("compound"), rect: g.querySelector("rect")!.getBoundingClientRect() }))
      const labels = [
        ...[...svg.querySelectorAll("g.st")].map((g) => ({ name: `state ${g.getAttribute("data-state")}`, own: g.getAttribute("data-state") ?? undefined, text: g.querySelector("text")! })),
        ...[...svg.querySelectorAll("g.tr")].map((g) => ({ name: `label of ${g.getAttribute("data-edge")} '${[...g.querySelectorAll("tspan")].map((t) => t.textContent).join(", ")}'`, own: undefined as string | undefined, text: g.querySelector("text")! })),
      ].map((l) => ({ ...l, rect: l.text.getBoundingClientRect() }))
      if (labels.length === 0) found.push(`${where}: no labels drawn`)
      for (let i = 0; i < labels.length; i++) {
        const a = labels[i]!
        const px = Number.parseFloat(style(a.text).fontSize) * scale
        if (!(px >= 11)) found.push(`${where}: ${a.name} drawn at ${px.toFixed(1)} px`)
        if (!inside(a.rect, box) || !inside(a.rect, frame)) found.push(`${where}: ${a.name} ${fmt(a.rect)} clipped by the chart ${fmt(box)}`)
        for (let j = i + 1; j < labels.length; j++) if (overlap(a.rect, labels[j]!.rect)) found.push(`${where}: ${a.name} ${fmt(a.rect)} overlaps ${labels[j]!.name} ${fmt(labels[j]!.rect)}`)
        for (const s of states) {
          const mayLie = a.own === undefined ? s.compound : a.own === s.path || a.own.startsWith(`${s.path}.`)
          if (!mayLie && overlap(a.rect, s.rect)) found.push(`${where}: ${a.name} ${fmt(a.rect)} under state ${s.path} ${fmt(s.rect)}`)
        }
      }
    }
    return found
  })
/** The plots' tick labels that overlap, and legends that lie on their plot. */
const plotFaults = (p: Page) =>
  p.locator(".plotpanel").evaluateAll((els) => {
    const panels = els as unknown as Array<Elem>
    const found: Array<string> = []
    const overlap = (a: Rect, b: Rect) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 0.5 && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 0.5
    for (const panel of panels) {
      const svg = panel.querySelector("svg.plot")!
      const ticks = [...svg.querySelectorAll("text.tick")].map((t) => ({ text: t.textContent, rect: t.getBoundingClientRect() }))
      for (let i = 0; i < ticks.length; i++) for (let j = i + 1; j < ticks.length; j++) if (overlap(ticks[i]!.rect, ticks[j]!.rect)) found.push(`${svg.getAttribute("id")}: ticks '${ticks[i]!.text}' and '${ticks[j]!.text}' overlap`)
      if (overlap(panel.querySelector(".legend")!.getBoundingClientRect(), svg.getBoundingClientRect())) found.push(`${svg.getAttribute("id")}: the legend lies on the plot`)
    }
    return found
  })
const expectChartsClean = async (when: string) => {
  const started = performance.now()
  const faults = await chartFaults(page)
  console.log(`dashboard: ${when}, the 15 charts' labels checked in ${(performance.now() - started).toFixed(0)} ms`)
  expect(faults.length, `state charts ${when}: ${faults.length} faults:\n${faults.slice(0, 30).join("\n")}`).toBe(0)
  expect(await page.locator(".card[data-server] .chart svg").count()).toBe(15)
}
const buttonsOf = async (server: string) =>
  Object.fromEntries(await page.locator(`.card[data-server="${server}"] button[data-action]`).evaluateAll((bs) => bs.map((b) => [b.getAttribute("data-action")!, !(b as unknown as { disabled: boolean }).disabled])))
const bullyOn = (server: string, state: string) => page.locator(`.card[data-server="${server}"] .chart[data-machine=bully] .st.on[data-state="${state}"]`).count().then((n) => n > 0)

describe.skipIf(!available)("dashboard in headless Chromium", () => {
  beforeAll(async () => {
    up = spawnBulletin("up", ["up", "--data", join(dir, "data"), "--host", host, "--server-ip-base", serverBase, "--bots", "1", "--dashboard-port", "0"])
    const line = await up.waitFor(/open (http:\/\/\S+) to watch/, 60_000)
    url = /open (http:\/\/\S+) to watch/.exec(line)![1]!
    browser = await chromium.launch({
      executablePath: chromiumPath,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
    })
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
    page.on("pageerror", (e) => console.error(`dashboard page error: ${e.message}`))
  }, 90_000)

  afterAll(async () => {
    await browser?.close()
    await stopAll()
  }, 30_000)

  it("shows the coordinator; Stop causes an election the page shows; Restart and Partition/Heal work", async () => {
    await page.goto(url)
    // All three servers reporting, agreeing on the highest rank (at start-up each leads alone for a moment).
    await until("three servers agreeing on the highest rank", () => agreedOnHighest(), 60_000)
    const first = await coordinator()
    expect(await page.locator(`.card[data-server="${first}"]`).getAttribute("class")).toContain("lead")
    await until("the coordinator's election chart at leader", () => bullyOn(first, "leader"), 10_000)
    // The charts are drawn from the definitions: every bully state is a box.
    for (const s of ["starting", "electing", "waiting", "leader", "leader.announcing", "follower"]) {
      expect(await page.locator(`.card[data-server="${first}"] .chart[data-machine=bully] .st[data-state="${s}"]`).count()).toBe(1)
    }
    // ELK's layout as drawn: no label overlaps another, is clipped or hidden, or is under 11 px (3 cards × 5 charts).
    await expectChartsClean("at start")
    // The plots: legend beside the plot, a few y ticks, and the nearest point read out on hover.
    const plot = page.locator("#plot-offset")
    const plotBox = (await plot.boundingBox())!
    const legendBox = (await page.locator("#plot-offset + .legend").boundingBox())!
    expect(legendBox.x).toBeGreaterThanOrEqual(plotBox.x + plotBox.width)
    expect(await page.locator("#plot-offset text.tick[text-anchor=end]").count()).toBeGreaterThanOrEqual(3)
    expect(await plotFaults(page)).toEqual([])
    await page.mouse.move(plotBox.x + plotBox.width - 12, plotBox.y + plotBox.height / 2)
    await until("the plot's hover readout", async () => /^server-\d · \d\d:\d\d:\d\d\.\d{3} · [+-]?\d+(\.\d+)? ms$/.test((await page.textContent("#plot-offset ~ .readout, .plotpanel:has(#plot-offset) .readout")) ?? ""), 5_000)
    await page.mouse.move(0, 0)
    expect(await buttonsOf(first)).toEqual({ stop: true, restart: true, partition: true, heal: false })
    await shot("dashboard")

    const clicked = performance.now()
    await page.click(`button[data-action=stop][data-server="${first}"]`)
    await until("the stopped server's card", async () => ((await page.locator(`.card[data-server="${first}"]`).getAttribute("class")) ?? "").includes("stopped"), 10_000)
    // A stopped server can only be restarted.
    expect(await buttonsOf(first)).toEqual({ stop: false, restart: true, partition: false, heal: false })
    const second = await (async () => {
      await until("a new coordinator", async () => isServer(await coordinator()) && (await coordinator()) !== first, 30_000)
      return coordinator()
    })()
    const tookMs = performance.now() - clicked
    await until("the new coordinator's chart at leader", () => bullyOn(second, "leader"), 10_000)
    expect(await page.locator(".timeline li", { hasText: `${second} became COORDINATOR` }).count()).toBeGreaterThan(0)
    await expectChartsClean("after the stop")
    await shot("dashboard-after-stop")
    await shot("dashboard-card", page.locator(`.card[data-server="${second}"]`))
    console.log(`dashboard: stopped ${first}; page named ${second} coordinator ${(tookMs / 1000).toFixed(2)} s after the click`)

    await page.click(`button[data-action=restart][data-server="${first}"]`)
    await until("the restarted highest rank coordinating again", async () => (await coordinator()) === first && (await agreedOnHighest()), 40_000)

    const follower = [1, 2, 3].map((i) => `server-${i}`).find((s) => s !== first)!
    await page.click(`button[data-action=partition][data-server="${follower}"]`)
    await until("the partitioned card", async () => ((await page.locator(`.card[data-server="${follower}"]`).getAttribute("class")) ?? "").includes("frozen"), 10_000)
    expect(await buttonsOf(follower)).toEqual({ stop: true, restart: true, partition: false, heal: true })
    expect(await coordinator()).toBe(first)
    await page.click(`button[data-action=heal][data-server="${follower}"]`)
    await until("the healed server reporting again", async () => ((await page.locator(`.card[data-server="${follower}"]`).getAttribute("class")) ?? "").includes("follower"), 20_000)
  }, 180_000)
})

describe.skipIf(!available)("dashboard replaying a simulator run in headless Chromium", () => {
  it("scrubs through simulated time: no coordinator at the start, the run's final coordinator at the end", async () => {
    const r = runScenario(generateScenario(3), { monitorEveryMs: 250 })
    const m = r.monitoring!
    const trace: Trace = { kind: "bulletin-trace", version: 1, title: "seed 3", startAt: m.startAt, endAt: m.endAt, reports: m.reports, notes: m.notes, checks: r.checks }
    const served = await serveDashboard({ host: "127.0.0.1", port: 0, trace })
    const replayBrowser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"] })
    try {
      const p = await replayBrowser.newPage({ viewport: { width: 1400, height: 1000 } })
      await p.goto(served.url)
      await p.waitForSelector("#replay:not([hidden])")
      const text = async (sel: string) => ((await p.textContent(sel)) ?? "").trim()
      expect(await text("[data-testid=coordinator]")).toMatch(/^none/)
      await p.locator("#scrub").fill(String(m.endAt - m.startAt))
      await p.waitForFunction(`document.querySelector("[data-testid=coordinator]")?.textContent === ${JSON.stringify(r.stats.coordinator)}`)
      expect(await p.locator(`.card[data-server="${r.stats.coordinator}"] .chart[data-machine=bully] .st.on[data-state=leader]`).count()).toBe(1)
      expect(await p.locator("#checks li").count()).toBe(r.checks.length)
      expect(await chartFaults(p)).toEqual([])
      expect(await plotFaults(p)).toEqual([])
      // Play runs simulated time forwards from wherever the scrubber is.
      await p.locator("#scrub").fill("10000")
      const before = await text("#clock")
      await p.click("#play")
      await p.waitForFunction(`document.querySelector("#clock")?.textContent !== ${JSON.stringify(before)}`)
      await p.click("#play")
      page = p
      await shot("dashboard-replay")
    } finally {
      await replayBrowser.close()
      await served.close()
    }
  }, 60_000)
})
