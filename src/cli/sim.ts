import { readFileSync, writeFileSync } from "node:fs"
import { serveDashboard } from "../dashboard/http.ts"
import type { Trace } from "../dashboard/trace.ts"
import { runScenario } from "../sim/cluster.ts"
import { type Scenario, describeFault, generateScenario } from "../sim/scenario.ts"
import { type Spec, int, parse, usage } from "./options.ts"

const spec: Spec = {
  seed: { help: "replay the run drawn from this seed and print its timeline" },
  scenario: { help: "replay a scenario given as JSON (or @file), as printed by a failing property test" },
  seeds: { help: "run this many seeds (from --seed, default 1) and print a summary instead of a timeline" },
  quiet: { boolean: true, help: "print only the checks" },
  trace: { help: "write the run's monitoring reports to this file, for `bulletin dashboard --trace FILE`" },
  dashboard: { boolean: true, help: "then serve the dashboard replaying the run (scrub through simulated time)" },
  host: { default: "127.0.0.1", help: "with --dashboard: address to serve the page on" },
  port: { default: "5580", help: "with --dashboard: port of the page" },
  "monitor-every": { default: "250", help: "with --trace/--dashboard: simulated ms between two reports of a server" },
  inspect: { boolean: true, help: "send every machine's inspection events to the XState inspector relay (open its page first)" },
  "inspect-url": { env: "INSPECT_URL", default: "ws://127.0.0.1:8080", help: "WebSocket of the inspector relay" },
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
      for (const c of r.stats.catchUps) {
        catchUpOps = Math.max(catchUpOps, c.ops)
        catchUpMs = Math.max(catchUpMs, c.ms)
      }
    }
    const seconds = (performance.now() - started) / 1000
    console.log(`${count} schedules in ${seconds.toFixed(1)} s: ${(count / seconds).toFixed(1)} schedules/s`)
    console.log(`longest agreement after healing: ${agreement} ms; largest clock spread after sync: ${spread.toFixed(3)} ms`)
    console.log(`longest time to a new coordinator after a coordinator crash (faults still running): ${takeover} ms`)
    console.log(`client posts: ${written} written, ${acknowledged} acknowledged, every acknowledged one on every replica exactly once${failed.length === 0 ? "" : " (except in the failed seeds)"}`)
    console.log(`largest catch-up: ${catchUpOps} ops; longest: ${catchUpMs.toFixed(0)} ms (simulated)`)
    console.log(failed.length === 0 ? "every property held" : `properties failed for seeds: ${failed.join(" ")} (replay: bulletin sim --seed S)`)
    process.exitCode = failed.length === 0 ? 0 : 1
    return
  }
  const scenario = p.values.scenario !== undefined ? parseScenario(p.values.scenario) : generateScenario(p.values.seed === undefined ? 1 : int(p.values.seed, "seed"))
  const recording = p.values.trace !== undefined || p.flags.dashboard
  const inspector = p.flags.inspect ? (await import("./inspect.ts")).statelyInspector(p.values["inspect-url"]!, "sim", inspectEventsMax) : undefined
  const r = runScenario(scenario, {
    timeline: true,
    monitorEveryMs: recording ? int(p.values["monitor-every"], "monitor-every", 10) : undefined,
    inspect: inspector === undefined ? undefined : () => inspector.observer,
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
      title: `simulator, ${p.values.scenario !== undefined ? "scenario" : `seed ${scenario.seed}`}${r.ok ? "" : " (a property FAILED)"}`,
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
      const served = await serveDashboard({ host: p.values.host!, port: int(p.values.port, "port"), trace, title: trace.title })
      console.log(`dashboard: replaying the run at ${served.url} (Ctrl-C to stop)`)
    }
  }
  if (inspector !== undefined) console.log(`inspect: the run's inspection events go to ${p.values["inspect-url"]} (at most ${inspectEventsMax}, the oldest dropped); Ctrl-C when the inspector has them`)
}

/** `sim --inspect`: the whole run is sent at once, so more events may wait for the relay than a live role allows. */
const inspectEventsMax = 100_000
