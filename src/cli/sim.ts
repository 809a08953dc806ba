import { readFileSync, writeFileSync } from "node:fs"
import { serveDashboard } from "../dashboard/http.ts"
import type { Trace } from "../dashboard/trace.ts"
import type { InspectionEvent } from "xstate"
import { runScenario } from "../sim/cluster.ts"
import { type Scenario, describeFault, generateScenario } from "../sim/scenario.ts"
import { inspectUrlDefault, int, parse, portNumber, type Spec, usage } from "./options.ts"

export const spec: Spec = {
  seed: { help: "replay the run drawn from this seed and print its timeline" },
  scenario: { help: "replay a scenario given as JSON (or @file), as printed by a failing property test" },
  seeds: { help: "run this many seeds (from --seed, default 1) and print a summary instead of a timeline" },
  quiet: { boolean: true, help: "print only the checks" },
  trace: { help: "write the run's monitoring reports to this file, for `bulletin dashboard --trace FILE`" },
  dashboard: { boolean: true, help: "then serve the dashboard replaying the run (scrub through simulated time)" },
  host: { default: "127.0.0.1", help: "with --dashboard: address to serve the page on" },
  port: { default: "5580", help: "with --dashboard: port of the page" },
  "monitor-every": { default: "1000", help: "simulated ms between two monitoring reports of a server (recorded with --trace/--dashboard; another value makes another run)" },
  inspect: { boolean: true, help: "replay every machine's inspection events to the XState inspector relay, paced by simulated time" },
  speed: { default: "1", help: "with --inspect: simulated seconds per real second" },
  "inspect-url": { env: "INSPECT_URL", default: inspectUrlDefault, help: "WebSocket of the inspector relay" },
}

const parseScenario = (text: string): Scenario => JSON.parse(text.startsWith("@") ? readFileSync(text.slice(1), "utf8") : text) as Scenario

/** `bulletin sim`: one seeded run with its timeline, or a batch with a summary. Exit status 1 if a property failed. */
export const runSimCli = async (argv: ReadonlyArray<string>) => {
  const p = parse(argv, spec)
  if (p.flags.help) return console.log(usage("sim", "the deterministic cluster simulator", spec))
  if (p.values.seeds !== undefined) {
    const count = int(p.values.seeds, "seeds", 1)
    const first = p.values.seed === undefined ? 1 : int(p.values.seed, "seed")
    const started = performance.now()
    const failed: Array<number> = []
    let agreement = 0
    let spread = 0
    let takeover = 0
    let written = 0
    let acknowledged = 0
    let requests = 0
    let longestRequestMs = 0
    let catchUpOps = 0
    let catchUpMs = 0
    for (let seed = first; seed < first + count; seed++) {
      const r = runScenario(generateScenario(seed))
      if (!r.ok) failed.push(seed)
      agreement = Math.max(agreement, r.stats.agreementAfterHealMs ?? 0)
      spread = Math.max(spread, r.stats.clockSpreadMs ?? 0)
      for (const c of r.stats.coordinatorCrashes) takeover = Math.max(takeover, c.newCoordinatorAfterMs ?? 0)
      written += r.stats.written
      acknowledged += r.stats.acknowledged
      requests += r.stats.requests
      longestRequestMs = Math.max(longestRequestMs, r.stats.longestRequestMs)
      for (const c of r.stats.catchUps) {
        catchUpOps = Math.max(catchUpOps, c.ops)
        catchUpMs = Math.max(catchUpMs, c.ms)
      }
    }
    const seconds = (performance.now() - started) / 1000
    console.log(`${count} schedules in ${seconds.toFixed(1)} s: ${(count / seconds).toFixed(1)} schedules/s`)
    console.log(`longest agreement after healing: ${agreement} ms; largest clock spread after sync: ${spread.toFixed(3)} ms`)
    console.log(`longest time to a new coordinator after a coordinator crash (faults still running): ${takeover} ms`)
    console.log(`client requests: ${requests} (the longest ${longestRequestMs.toFixed(0)} ms, retries included); writes: ${written} sent, ${acknowledged} acknowledged, every acknowledged one on every replica exactly once${failed.length === 0 ? "" : " (except in the failed seeds)"}`)
    console.log(`largest catch-up: ${catchUpOps} ops; longest: ${catchUpMs.toFixed(0)} ms (simulated)`)
    console.log(failed.length === 0 ? "every property held" : `properties failed for seeds: ${failed.join(" ")} (replay: bulletin sim --seed S)`)
    process.exitCode = failed.length === 0 ? 0 : 1
    return
  }
  const scenario = p.values.scenario !== undefined ? parseScenario(p.values.scenario) : generateScenario(p.values.seed === undefined ? 1 : int(p.values.seed, "seed"))
  const recording = p.values.trace !== undefined || p.flags.dashboard
  const speed = Number(p.values.speed)
  if (!(speed > 0) || !Number.isFinite(speed)) throw new Error(`--speed must be a positive number, got '${p.values.speed}'`)
  const inspector = p.flags.inspect ? (await import("./inspect.ts")).statelyInspector(p.values["inspect-url"]!, "sim", inspectPendingMax) : undefined
  // Recorded during the (synchronous) run with their simulated time, then sent paced.
  const recorded: Array<{ readonly t: number; readonly e: InspectionEvent }> = []
  let unrecorded = 0
  const r = runScenario(scenario, {
    timeline: true,
    monitorEveryMs: int(p.values["monitor-every"], "monitor-every", 10),
    record: recording,
    inspect: inspector === undefined ? undefined : (_server, _machine, simNow) => (e) => (recorded.length < inspectEventsMax ? recorded.push({ t: simNow(), e }) : (unrecorded += 1)),
  })
  console.log(`scenario: ${scenario.servers} servers; network ${scenario.network.delayMinMs}-${scenario.network.delayMaxMs} ms, drop ${(scenario.network.dropRate * 100).toFixed(1)}%, duplicate ${(scenario.network.duplicateRate * 100).toFixed(1)}%`)
  console.log(`clocks: ${scenario.clocks.map((c, i) => `s${i + 1} ${c.skewMs >= 0 ? "+" : ""}${c.skewMs} ms ${c.driftPpm} ppm`).join(", ")}`)
  console.log(`faults until ${scenario.faultPhaseMs / 1000}s: ${scenario.faults.map((f) => `${(f.at / 1000).toFixed(1)}s ${describeFault(f)}`).join("; ") || "none"}`)
  const lines = p.flags.quiet ? r.timeline.filter((l) => l.includes("CHECK")) : r.timeline
  for (const l of lines) console.log(l)
  console.log(r.ok ? "every property held" : "a property FAILED")
  process.exitCode = r.ok ? 0 : 1
  if (r.monitoring !== undefined) {
    const trace: Trace = {
      kind: "bulletin-trace",
      version: 1,
      title: `simulator, ${p.values.scenario !== undefined ? "scenario" : `--seed ${p.values.seed ?? 1}`}${r.ok ? "" : " (a property FAILED)"}`,
      startAt: r.monitoring.startAt,
      endAt: r.monitoring.endAt,
      reports: r.monitoring.reports,
      notes: r.monitoring.notes,
      checks: r.checks,
    }
    if (p.values.trace !== undefined) {
      writeFileSync(p.values.trace, JSON.stringify(trace))
      console.log(`trace: ${trace.reports.length} reports, ${trace.notes.length} notes written to ${p.values.trace} (replay: bulletin dashboard --trace ${p.values.trace})`)
    }
    if (p.flags.dashboard) {
      const served = await serveDashboard({ host: p.values.host!, port: portNumber(p.values.port, "port"), trace, title: trace.title })
      console.log(`dashboard: replaying the run at ${served.url} (Ctrl-C to stop)`)
    }
  }
  if (inspector !== undefined) {
    const spanMs = recorded.length === 0 ? 0 : recorded.at(-1)!.t - recorded[0]!.t
    console.log(`inspect: replaying ${recorded.length} inspection events${unrecorded > 0 ? ` (${unrecorded} more not kept)` : ""} to ${p.values["inspect-url"]} at ${speed}x: ${(spanMs / speed / 1000).toFixed(0)} s (open the relay's page)`)
    const t0 = recorded[0]?.t ?? 0
    const started = performance.now()
    let next = 0
    const tick = () => {
      const simElapsed = (performance.now() - started) * speed
      while (next < recorded.length && recorded[next]!.t - t0 <= simElapsed) inspector.observer(recorded[next++]!.e)
      if (next < recorded.length) setTimeout(tick, 50)
      else console.log("inspect: the whole run has been sent; Ctrl-C to stop")
    }
    tick()
  }
}

/** `sim --inspect`: inspection events kept from one run (the rest counted), and how many may wait for the relay. */
const inspectEventsMax = 200_000
const inspectPendingMax = 10_000
