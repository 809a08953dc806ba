import { existsSync, mkdirSync, mkdtempSync } from "node:fs"
import { copyFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { type Browser, type Page, chromium } from "playwright-core"
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
 *
 * Screenshots go to the test's temporary folder (printed); with
 * BULLETIN_SCREENSHOTS=DIR they are also copied there (docs/ for the README).
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

const shot = async (name: string) => {
  const file = join(dir, `${name}.png`)
  await page.screenshot({ path: file, fullPage: true })
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
      await shot(`failed-${what.replace(/\W+/g, "-")}`)
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
    await shot("dashboard")

    const clicked = performance.now()
    await page.click(`button[data-action=stop][data-server="${first}"]`)
    await until("the stopped server's card", async () => ((await page.locator(`.card[data-server="${first}"]`).getAttribute("class")) ?? "").includes("stopped"), 10_000)
    const second = await (async () => {
      await until("a new coordinator", async () => isServer(await coordinator()) && (await coordinator()) !== first, 30_000)
      return coordinator()
    })()
    const tookMs = performance.now() - clicked
    await until("the new coordinator's chart at leader", () => bullyOn(second, "leader"), 10_000)
    expect(await page.locator(".timeline li", { hasText: `${second} became COORDINATOR` }).count()).toBeGreaterThan(0)
    await shot("dashboard-after-stop")
    console.log(`dashboard: stopped ${first}; page named ${second} coordinator ${(tookMs / 1000).toFixed(2)} s after the click`)

    await page.click(`button[data-action=restart][data-server="${first}"]`)
    await until("the restarted highest rank coordinating again", async () => (await coordinator()) === first && (await agreedOnHighest()), 40_000)

    const follower = [1, 2, 3].map((i) => `server-${i}`).find((s) => s !== first)!
    await page.click(`button[data-action=partition][data-server="${follower}"]`)
    await until("the partitioned card", async () => ((await page.locator(`.card[data-server="${follower}"]`).getAttribute("class")) ?? "").includes("frozen"), 10_000)
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
