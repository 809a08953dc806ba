/**
 * `npm run bench`: bulletin's end-to-end figures next to raw ZeroMQ measured
 * in the same run, on the same machine, through the same broker and proxy
 * processes. The raw server (bench/raw-echo.mjs) forwards each request to the
 * proxy and echoes it: the physical limit of the path. Each figure is the
 * median of `--runs` runs; compare the ratios, not the absolute numbers.
 */
import { spawn, spawnSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import * as zmq from "zeromq"
import { decode, encode } from "../src/protocol/codec.ts"
import { parse, usage, type Spec } from "../src/cli/options.ts"
import { generateKey } from "../src/transport/keys.ts"
import { packageRoot } from "../src/cli/root.ts"

export const spec: Spec = {
  host: { default: "127.83.0.1", help: "loopback address for the benchmark's broker and proxy" },
  runs: { default: "3", help: "runs per figure (the median is printed)" },
  requests: { default: "2000", help: "sequential round trips per run" },
  clients: { default: "16", help: "concurrent clients in the throughput runs" },
  "per-client": { default: "500", help: "requests per client in the throughput runs" },
  servers: { default: "3", help: "bulletin servers" },
  dashboard: { boolean: true, help: "also measure bulletin with a dashboard attached (a page open on its event stream), runs interleaved with unwatched ones" },
  profile: { help: "write a CPU profile of every process the benchmark starts (broker, proxy, servers, ...) into this folder (node --cpu-prof); `node bench/profile-top.mjs FILE` summarises one" },
  open: { boolean: true, help: "run the cluster in open mode (no CURVE between its roles); by default it has a key, as deployed, and so does the raw baseline" },
}

const root = packageRoot(import.meta.url)
const bin = join(root, "bin/bulletin.js")

type Child = ReturnType<typeof spawn>
const children: Array<Child> = []
const outputOf = new WeakMap<Child, string>()
/** What every role of the benchmark gets: the cluster's key (as deployed), or open mode. */
const roleEnv: Record<string, string> = {}
/** `--profile DIR`: node's own CPU profiler in every process started (written when it exits). */
const profileArgs: Array<string> = []
const start = (args: Array<string>, ready: RegExp) =>
  new Promise<Child>((done, fail) => {
    const c = spawn(process.execPath, [...profileArgs, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...roleEnv } })
    children.push(c)
    let out = ""
    const t = setTimeout(() => fail(new Error(`${args.join(" ")} not ready:\n${out}`)), 30_000)
    const on = (b: Buffer) => {
      out += b.toString()
      outputOf.set(c, out)
      if (ready.test(out)) { clearTimeout(t); done(c) }
    }
    c.stdout!.on("data", on)
    c.stderr!.on("data", on)
  })
const stopAll = async () => {
  await Promise.all(children.splice(0).map((c) => new Promise<void>((done) => { if (c.exitCode !== null) return done(); c.on("exit", () => done()); c.kill("SIGTERM") })))
}

/**
 * Start-up of one command: wall time and peak RSS (reported by the process
 * itself at exit, through a preloaded script), the median of `runs`.
 */
const startup = (args: ReadonlyArray<string>, env: Record<string, string>, runs: number) => {
  const preload = join(mkdtempSync(join(tmpdir(), "bulletin-bench-rss-")), "rss.cjs")
  writeFileSync(preload, `process.on("exit", () => process.stderr.write("\\nmaxRSS " + process.resourceUsage().maxRSS + "\\n"))\n`)
  const ms: Array<number> = []
  const mb: Array<number> = []
  for (let i = 0; i < runs; i++) {
    const t = performance.now()
    const r = spawnSync(process.execPath, ["--require", preload, ...args], { env: { ...process.env, ...env }, encoding: "utf8" })
    ms.push(performance.now() - t)
    const kb = Number(/maxRSS (\d+)/.exec(r.stderr ?? "")?.[1])
    if (Number.isFinite(kb)) mb.push(kb / 1024)
  }
  return { ms: median(ms), mb: mb.length > 0 ? median(mb) : NaN }
}

const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const percentile = (xs: Array<number>, p: number) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! }

interface Target {
  readonly name: string
  /** The request frame for the i-th request of a client; it carries its send time. */
  readonly frame: (client: number, i: number, sentAt: number) => Uint8Array
  /** The send time a publication carries, or undefined if it is not one of ours. */
  readonly sentAtOf: (payload: Uint8Array) => number | undefined
}

const sentAtFromText = (payload: Uint8Array) => {
  const d = decode(payload)
  if (!d.ok) return undefined
  const m = (d.value as { data?: { message?: string } }).data?.message
  const at = m === undefined ? NaN : Number(m.split(" ")[1])
  return Number.isFinite(at) ? at : undefined
}

const request = (client: number, i: number, sentAt: number) =>
  encode({ service: "publish", data: { user: `bench${client}`, channel: "bench", message: `b ${sentAt} ${client}-${i}`, timestamp: Date.now(), clock: i } })

const readRequest = encode({ service: "channels", data: { timestamp: 0, clock: 1 } })

async function sequential(brokerAt: string, target: Target, n: number, readOnly = false) {
  const sock = new zmq.Request({ linger: 0, receiveTimeout: 5_000 })
  sock.connect(brokerAt)
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    await sock.send(readOnly ? readRequest : target.frame(0, i, performance.now()))
    await sock.receive()
  }
  const s = (performance.now() - t0) / 1000
  sock.close()
  return n / s
}

async function concurrent(brokerAt: string, proxyAt: string, target: Target, clients: number, perClient: number) {
  const sub = new zmq.Subscriber({ linger: 0, receiveHighWaterMark: 1_000_000 })
  sub.connect(proxyAt)
  sub.subscribe("bench")
  await new Promise((r) => setTimeout(r, 300))
  const latencies: Array<number> = []
  let received = 0
  let lastAt = 0
  const expected = clients * perClient
  const reading = (async () => {
    for await (const [, payload] of sub) {
      const at = target.sentAtOf(payload!)
      if (at === undefined) continue
      lastAt = performance.now()
      latencies.push(lastAt - at)
      if (++received >= expected) return
    }
  })()
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      const sock = new zmq.Request({ linger: 0, receiveTimeout: 10_000 })
      sock.connect(brokerAt)
      for (let i = 0; i < perClient; i++) {
        await sock.send(target.frame(c, i, performance.now()))
        await sock.receive()
      }
      sock.close()
    }),
  )
  const requestSeconds = (performance.now() - t0) / 1000
  await Promise.race([reading, new Promise((r) => setTimeout(r, 5_000))])
  sub.close()
  return {
    roundTripsPerSecond: expected / requestSeconds,
    deliveredPerSecond: received / ((lastAt - t0) / 1000),
    lost: expected - received,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  }
}

export const runBench = async (argv: ReadonlyArray<string>) => {
  // Against a running cluster (any that speaks the standard protocol): the load generator.
  if (argv.some((a) => a === "--broker" || a.startsWith("--broker="))) {
    const { runLoad } = await import("./load.ts")
    return void (await runLoad(argv))
  }
  const p = parse(argv, spec)
  if (p.flags.help) {
    console.log(usage("bench", "benchmarks against raw ZeroMQ (it starts its own cluster)", spec))
    return console.log("\nAgainst a running cluster: bulletin bench --broker HOST [--proxy HOST] [--clients C] [--window W] [--seconds S] [--mix publish:8,message:1,history:1] [--msg-bytes N] [--json]  (bulletin bench --broker x --help)")
  }
  const host = p.values.host!
  const runs = Number(p.values.runs)
  const n = Number(p.values.requests)
  const clients = Number(p.values.clients)
  const perClient = Number(p.values["per-client"])
  if (p.values.profile !== undefined) profileArgs.push("--cpu-prof", `--cpu-prof-dir=${resolve(p.values.profile)}`)
  if (p.flags.open) roleEnv.BULLETIN_OPEN = "1"
  else {
    const key = generateKey()
    roleEnv.BULLETIN_CLUSTER_KEY = `${key.publicKey} ${key.secretKey}`
  }
  const brokerAt = `tcp://${host}:5555`
  const proxyAt = `tcp://${host}:5558`
  const results: Record<string, Array<Record<string, number>>> = { raw: [], bulletin: [], watched: [] }
  let watchedReports = 0
  try {
    await start([bin, "broker", "--host", host], /broker: tcp/)
    await start([bin, "proxy", "--host", host], /proxy: tcp/)

    // Raw ZeroMQ: the echo server alone behind the broker.
    const raw = await start([join(root, "bench/raw-echo.mjs"), `tcp://${host}:5556`, `tcp://${host}:5557`], /raw echo ready/)
    const rawTarget: Target = { name: "raw", frame: request, sentAtOf: sentAtFromText }
    for (let r = 0; r < runs; r++) results.raw!.push({ reads: await sequential(brokerAt, rawTarget, n, true), sequential: await sequential(brokerAt, rawTarget, n), ...(await concurrent(brokerAt, proxyAt, rawTarget, clients, perClient)) })
    raw.kill("SIGTERM")
    await new Promise((r) => setTimeout(r, 300))

    // bulletin: its servers behind the same broker and proxy.
    const data = mkdtempSync(join(tmpdir(), "bulletin-bench-"))
    const servers = Number(p.values.servers)
    // As deployed: a reference, each server on its own address (its peer port 5560), elections and clock sync running.
    await start([bin, "reference", "--host", host], /reference: serving/)
    const ownHost = (i: number) => host.replace(/\.\d+$/, (last) => `.${Number(last.slice(1)) + 10 + i}`)
    await Promise.all(Array.from({ length: servers }, (_, i) => start([bin, "server", "--name", `bench-${i + 1}`, "--data", join(data, `s${i + 1}`), "--broker", host, "--proxy", host, "--reference", host, "--host", ownHost(i + 1)], /serving requests/)))
    const setup = new zmq.Request({ linger: 0, receiveTimeout: 5_000 })
    setup.connect(brokerAt)
    for (const v of [{ service: "channel", data: { channel: "bench" } }]) { await setup.send(encode(v)); await setup.receive() }
    setup.close()
    await new Promise((r) => setTimeout(r, 500))
    const bulletinTarget: Target = { name: "bulletin", frame: request, sentAtOf: sentAtFromText }
    const measure = async () => ({ reads: await sequential(brokerAt, bulletinTarget, n, true), sequential: await sequential(brokerAt, bulletinTarget, n), ...(await concurrent(brokerAt, proxyAt, bulletinTarget, clients, perClient)) })
    for (let r = 0; r < runs; r++) {
      // With --dashboard, the order alternates (unwatched first, then watched first), so warming up favours neither.
      if (!p.flags.dashboard || r % 2 === 0) results.bulletin!.push(await measure())
      if (!p.flags.dashboard) continue
      // Interleaved: the same cluster, with a dashboard subscribed to `monitor` and a page reading its stream.
      const dashboard = await start([bin, "dashboard", "--proxy", host, "--port", "0"], /dashboard: http:\/\/\S+/)
      const url = /dashboard: (http:\/\/\S+)/.exec(outputOf.get(dashboard) ?? "")![1]!
      const page = new AbortController()
      let reports = 0
      const reading = (async () => {
        const res = await fetch(`${url}api/events`, { signal: page.signal })
        const reader = res.body!.getReader()
        for (;;) {
          const { value, done } = await reader.read()
          if (done) return
          reports += (new TextDecoder().decode(value).match(/event: report/g) ?? []).length
        }
      })().catch(() => {})
      await new Promise((r) => setTimeout(r, 1_500))
      const before = reports
      results.watched!.push(await measure())
      watchedReports += reports - before
      page.abort()
      await reading
      await new Promise<void>((done) => { dashboard.on("exit", () => done()); dashboard.kill("SIGTERM") })
      await new Promise((r) => setTimeout(r, 1_500))
      if (r % 2 === 1) results.bulletin!.push(await measure())
    }
  } finally {
    await stopAll()
  }

  const watched = results.watched!.length > 0
  const row = (label: string, key: string, digits: number, higherIsBetter: boolean) => {
    const r = median(results.raw!.map((x) => x[key]!))
    const b = median(results.bulletin!.map((x) => x[key]!))
    const ratio = higherIsBetter ? b / r : r / b
    const base = `${label.padEnd(44)}${r.toFixed(digits).padStart(12)}${b.toFixed(digits).padStart(12)}${ratio.toFixed(2).padStart(9)}`
    if (!watched) return base
    const w = median(results.watched!.map((x) => x[key]!))
    return `${base}${w.toFixed(digits).padStart(14)}${(higherIsBetter ? w / r : r / w).toFixed(2).padStart(9)}${(higherIsBetter ? w / b : b / w).toFixed(2).padStart(11)}`
  }
  console.log(`\nbulletin bench: ${runs} runs each, medians; ${clients} clients x ${perClient} publish requests; ${p.values.servers} servers (durable writes, replication); cluster links ${p.flags.open ? "OPEN (no CURVE)" : "CURVE (the default), the raw baseline too"}`)
  console.log(`${"".padEnd(44)}${"raw ZeroMQ".padStart(12)}${"bulletin".padStart(12)}${"ratio".padStart(9)}${watched ? `${"+dashboard".padStart(14)}${"ratio".padStart(9)}${"watched/un".padStart(11)}` : ""}`)
  console.log(row("read (channels), 1 client (round trips/s)", "reads", 0, true))
  console.log(row("durable publish, 1 client (round trips/s)", "sequential", 0, true))
  console.log(row(`durable publish, ${clients} clients (round trips/s)`, "roundTripsPerSecond", 0, true))
  console.log(row("publish -> subscriber (deliveries/s)", "deliveredPerSecond", 0, true))
  console.log(row("publish -> subscriber latency p50 (ms)", "p50", 2, false))
  console.log(row("publish -> subscriber latency p99 (ms)", "p99", 2, false))
  console.log(`lost publications (all runs): raw ${results.raw!.reduce((a, x) => a + x.lost!, 0)}, bulletin ${results.bulletin!.reduce((a, x) => a + x.lost!, 0)}`)
  console.log("ratio: bulletin / raw for rates, raw / bulletin for latencies (1.00 = the physical limit)")
  if (watched) console.log(`+dashboard: the same cluster with a dashboard attached and a page reading its stream (${watchedReports} monitor reports streamed during those runs); watched/un: watched / unwatched (1.00 = monitoring costs nothing)`)

  // Start-up: what a healthcheck costs every few seconds in every container, against a bare node.
  const starts = Math.max(5, runs)
  const bare = startup(["-e", ""], {}, starts)
  const health = startup([bin, "health", "client"], {}, starts)
  const fromSource = startup([bin, "health", "client"], { BULLETIN_FROM_SOURCE: "1" }, starts)
  const helpRun = startup([bin, "--help"], {}, starts)
  console.log(`\nstart-up, medians of ${starts} (wall ms, peak RSS MB)         node -e ''   bulletin    ratio`)
  const line = (label: string, x: { ms: number; mb: number }) => `${label.padEnd(44)}${`${bare.ms.toFixed(0)} / ${bare.mb.toFixed(0)}`.padStart(12)}${`${x.ms.toFixed(0)} / ${x.mb.toFixed(0)}`.padStart(12)}${(x.ms / bare.ms).toFixed(2).padStart(9)}`
  console.log(line("bulletin health client (the healthcheck)", health))
  console.log(line("bulletin --help", helpRun))
  console.log(line("bulletin health client from the sources (tsx)", fromSource))
}
