import * as zmq from "zeromq"
import { type MonitorReport, decodeReport, monitorTopic } from "../actors/monitor.ts"
import { Ports, type Spec, endpoint, int, parse, usage } from "./options.ts"

/**
 * `bulletin monitor`: watch the cluster think, in a terminal. Subscribes to
 * the servers' monitoring channel (topic `monitor` on the proxy) and prints
 * one line per server report and one per machine transition; `--json`
 * prints the reports as they come (one JSON object per line).
 */
export const spec: Spec = {
  proxy: { env: "PROXY_ADDR", default: "127.0.0.1", help: "proxy host (subscribers use port 5558)" },
  json: { boolean: true, help: "print each report as a JSON line" },
  count: { default: "0", help: "stop after this many reports (0: never)" },
  seconds: { default: "0", help: "stop after this many seconds (0: never)" },
}

/** Terminal-safe: names come from the network. */
const safe = (s: unknown) => String(s).replace(/[\u0000-\u001f\u007f-\u009f]/g, "?")

/** A SUB socket on the proxy's topic `monitor` (ZMTP heartbeats, so a proxy that went away is noticed and dialled again). */
export const monitorSubscriber = (proxy: string) => {
  const sub = new zmq.Subscriber({ linger: 0, receiveHighWaterMark: 1_000, maxMessageSize: 1 << 20, heartbeatInterval: 1_000, heartbeatTimeout: 3_000 })
  sub.connect(endpoint(proxy, Ports.proxyBackend))
  sub.subscribe(monitorTopic)
  return sub
}

/** The reports arriving on it; anything else (another topic, bad msgpack, not a report) is skipped. */
export async function* monitorReports(sub: zmq.Subscriber): AsyncGenerator<MonitorReport> {
  for await (const [topic, payload] of sub) {
    if (topic?.toString() !== monitorTopic || payload === undefined) continue
    const report = decodeReport(payload)
    if (report !== undefined) yield report
  }
}

const line = (r: MonitorReport) => {
  const role = r.coordinator === r.server ? "COORDINATOR" : `follows ${safe(r.coordinator ?? "nobody")}`
  const states = Object.entries(r.states).map(([k, v]) => `${safe(k)}=${safe(v)}`).join(" ")
  const lag = r.lagP50Ms === undefined ? "" : ` lag p50/p99 ${r.lagP50Ms.toFixed(1)}/${r.lagP99Ms?.toFixed(1)} ms`
  return `${safe(r.server)} rank ${r.rank ?? "?"} ${role} term ${r.term.epoch}/${r.term.rank}${r.referenceUp ? "" : " (reference unreachable)"} | ${states} | clock ${r.offsetMs >= 0 ? "+" : ""}${r.offsetMs.toFixed(1)} ms | ops ${r.ops}${lag} | ${r.requestsPerSecond} req/s`
}

export const runMonitor = async (argv: ReadonlyArray<string>) => {
  const p = parse(argv, spec)
  if (p.flags.help) {
    console.log(usage("monitor", "watch every server's machines, clock, replication and load (topic 'monitor')", spec))
    process.exit(0)
  }
  const count = int(p.values.count, "count")
  const seconds = int(p.values.seconds, "seconds")
  const sub = monitorSubscriber(p.values.proxy!)
  const stop = () => sub.close()
  process.once("SIGINT", stop)
  process.once("SIGTERM", stop)
  if (seconds > 0) setTimeout(stop, seconds * 1000).unref()
  let seen = 0
  try {
    for await (const report of monitorReports(sub)) {
      if (p.flags.json) console.log(JSON.stringify(report))
      else {
        for (const t of report.transitions) console.log(`  ${safe(report.server)} ${safe(t.machine)}: ${safe(t.from || "(start)")} -> ${safe(t.to)} on ${safe(t.event)}`)
        console.log(line(report))
      }
      seen += 1
      if (count > 0 && seen >= count) break
    }
  } catch (e) {
    if (!sub.closed) throw e
  } finally {
    if (!sub.closed) sub.close()
  }
  process.exit(0)
}
