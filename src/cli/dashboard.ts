import { readFileSync } from "node:fs"
import { DashboardHub } from "../dashboard/hub.ts"
import { type DashboardOptions, serveDashboard } from "../dashboard/http.ts"
import { type Trace, isTrace } from "../dashboard/trace.ts"
import { monitorReports, monitorSubscriber } from "./monitor.ts"
import { endpoint, int, parse, portNumber, Ports, type Spec, usage } from "./options.ts"

export const spec: Spec = {
  proxy: { env: "PROXY_ADDR", default: "127.0.0.1", help: "proxy host (the dashboard subscribes to topic 'monitor' on port 5558)" },
  host: { env: "DASHBOARD_HOST", default: "127.0.0.1", help: "address the web page is served on (keep it on loopback: no login)" },
  port: { env: "DASHBOARD_PORT", default: "5580", help: "port of the web page" },
  trace: { help: "replay a recorded simulator run (from `bulletin sim --seed S --trace FILE`) instead of watching live" },
}

/**
 * Feeds a hub from the servers' monitoring channel: a SUB socket on the
 * proxy, topic `monitor`. Returns a function that closes it.
 */
export const subscribeMonitor = (proxy: string, hub: DashboardHub): (() => void) => {
  const sub = monitorSubscriber(proxy)
  void (async () => {
    try {
      for await (const report of monitorReports(sub)) hub.report(report)
    } catch (e) {
      if (!sub.closed) console.error(`dashboard: monitor subscription failed: ${(e as Error).message}`)
    }
  })()
  return () => {
    if (!sub.closed) sub.close()
  }
}

/** Serves the dashboard live from the proxy; resolves once it listens. */
export const startLiveDashboard = async (o: { proxy: string; host: string; port: number; control?: DashboardOptions["control"]; title: string }) => {
  const hub = new DashboardHub()
  const unsubscribe = subscribeMonitor(o.proxy, hub)
  const served = await serveDashboard({ host: o.host, port: o.port, hub, control: o.control, title: o.title })
  return {
    hub,
    url: served.url,
    close: async () => {
      unsubscribe()
      await served.close()
    },
  }
}

export const loadTrace = (file: string): Trace => {
  const parsed: unknown = JSON.parse(readFileSync(file, "utf8"))
  if (!isTrace(parsed)) throw new Error(`${file} is not a bulletin trace (expected {"kind": "bulletin-trace", "version": 1, ...})`)
  return parsed
}

export const runDashboard = async (argv: ReadonlyArray<string>) => {
  const p = parse(argv, spec)
  if (p.flags.help) {
    console.log(usage("dashboard", "the web dashboard: live state charts, clocks, replication, elections (or a simulator replay)", spec))
    process.exit(0)
  }
  const port = portNumber(p.values.port, "port")
  const host = p.values.host!
  if (p.values.trace !== undefined) {
    const trace = loadTrace(p.values.trace)
    const served = await serveDashboard({ host, port, trace, title: trace.title })
    console.log(`dashboard: replaying ${p.values.trace} (${trace.reports.length} reports) at ${served.url}`)
    return
  }
  const d = await startLiveDashboard({ proxy: p.values.proxy!, host, port, title: `watching ${p.values.proxy}` })
  console.log(`dashboard: ${d.url} (monitor reports from ${endpoint(p.values.proxy!, Ports.proxyBackend)})`)
  const stop = () => void d.close().then(() => process.exit(0))
  process.once("SIGINT", stop)
  process.once("SIGTERM", stop)
}
