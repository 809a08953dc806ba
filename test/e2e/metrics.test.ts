import { connect } from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Proc, spawnBulletin, stopAll, tempDir } from "../support/procs.ts"

/**
 * Each server's Prometheus endpoint, in a cluster `bulletin up` started:
 * the counters move with the requests a client makes, the histogram is
 * consistent, the gauges agree with `bulletin status`, and hostile HTTP gets
 * an answer, never a dead endpoint.
 */
const host = "127.81.31.1"
const serverIps = ["127.81.31.11", "127.81.31.12", "127.81.31.13"]
const metricsUrl = (ip: string, path = "/metrics") => `http://${ip}:9464${path}`
let up: Proc
let data: string

beforeAll(async () => {
  data = tempDir("metrics")
  up = spawnBulletin("up", ["up", "--data", data, "--host", host, "--server-ip-base", serverIps[0]!, "--dashboard-port", "none", "--bots", "0"])
  await up.waitFor(/Prometheus metrics at server-1 http:\/\/127\.81\.31\.11:9464\/metrics/, 20_000)
  await up.waitFor(/server-3 +\|.*serving requests/, 30_000)
  await up.waitFor(/server-\d +\|.*coordinator is server-\d \(this server\)/, 30_000)
}, 60_000)
afterAll(stopAll)

interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** The Prometheus text format, strictly: every line a comment or `name{labels} value`. */
const parse = (text: string): { readonly samples: ReadonlyArray<Sample>; readonly types: ReadonlyMap<string, string> } => {
  const samples: Array<Sample> = []
  const types = new Map<string, string>()
  for (const line of text.split("\n")) {
    if (line === "") continue
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary)$/.exec(line)
    if (type !== null) {
      types.set(type[1]!, type[2]!)
      continue
    }
    if (line.startsWith("# HELP ")) continue
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    expect(m, `a sample line: ${line}`).not.toBeNull()
    const labels: Record<string, string> = {}
    for (const [, k, v] of m![2]?.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g) ?? []) labels[k!] = v!
    const value = m![3] === "+Inf" ? Infinity : Number(m![3])
    expect(Number.isNaN(value), line).toBe(false)
    samples.push({ name: m![1]!, labels, value })
  }
  return { samples, types }
}

const scrape = async (ip: string) => {
  const r = await fetch(metricsUrl(ip))
  expect(r.status).toBe(200)
  expect(r.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/)
  return parse(await r.text())
}

const value = (samples: ReadonlyArray<Sample>, name: string, labels: Record<string, string> = {}) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).reduce((n, s) => n + s.value, 0)

const jsonLines = (lines: ReadonlyArray<string>) => lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Record<string, unknown>)

/** One raw exchange on the metrics port: what comes back before the server closes (or 3 s pass). */
const raw = (ip: string, bytes: string) =>
  new Promise<string>((done) => {
    const socket = connect({ host: ip, port: 9464 })
    let got = ""
    const t = setTimeout(() => socket.destroy(), 3_000)
    socket.on("data", (d) => (got += d.toString("latin1")))
    socket.on("close", () => (clearTimeout(t), done(got)))
    socket.on("error", () => {})
    socket.write(bytes)
  })

describe("/metrics on every server of `bulletin up`", () => {
  it("counts the client's requests by service and status, with a consistent latency histogram", async () => {
    const posts = 12
    const client = spawnBulletin("client", ["client", "--json", "--broker", host, "--proxy", host, "--user", "meter", "--linger", "0"], {
      stdin: ["channel metered", ...Array.from({ length: posts }, (_, i) => `publish metered post ${i}`), "history metered", "history nosuch", "publish nosuch x", ""].join("\n"),
    })
    // Two commands fail on purpose: a script learns it from the exit status.
    expect(await client.exited).toBe(1)
    const replies = jsonLines(client.lines).filter((o) => o.type === "reply")
    expect(replies.map((r) => [r.command, r.ok])).toEqual([
      ["login", true],
      ["channel", true],
      ...Array.from({ length: posts }, () => ["publish", true]),
      ["history", true],
      ["history", false],
      ["publish", false],
    ])
    // History of a channel nobody created: the error publish gives, in the same words.
    const missing = (r: Record<string, unknown>) => JSON.stringify(r.data ?? r.error)
    expect(missing(replies.at(-2)!)).toContain("channel 'nosuch' does not exist")
    expect(missing(replies.at(-1)!)).toContain("channel 'nosuch' does not exist")
    // What the client sent, retries included (none expected in a quiet cluster).
    const sent = (command: string) => replies.filter((r) => r.command === command).reduce((n, r) => n + Number(r.attempts ?? 1), 0)

    const all = await Promise.all(serverIps.map(scrape))
    const total = (name: string, labels: Record<string, string> = {}) => all.reduce((n, m) => n + value(m.samples, name, labels), 0)
    expect(total("bulletin_requests_total", { service: "publish" })).toBe(sent("publish"))
    expect(total("bulletin_requests_total", { service: "publish", status: "ok" })).toBe(posts)
    expect(total("bulletin_requests_total", { service: "publish", status: "error" })).toBe(1)
    expect(total("bulletin_requests_total", { service: "history", status: "error" })).toBe(1)
    expect(total("bulletin_requests_total", { service: "history", status: "ok" })).toBe(1)
    expect(total("bulletin_requests_total", { service: "channel" })).toBe(sent("channel"))
    expect(total("bulletin_requests_total", { service: "login" })).toBe(sent("login"))
    // The broker round-robins: more than one server took a share.
    expect(all.filter((m) => value(m.samples, "bulletin_requests_total", { service: "publish" }) > 0).length).toBeGreaterThan(1)

    for (const m of all) {
      expect(m.types.get("bulletin_requests_total")).toBe("counter")
      expect(m.types.get("bulletin_request_duration_seconds")).toBe("histogram")
      for (const service of ["login", "channel", "publish", "history"]) {
        const buckets = m.samples.filter((s) => s.name === "bulletin_request_duration_seconds_bucket" && s.labels.service === service)
        const count = value(m.samples, "bulletin_request_duration_seconds_count", { service })
        // The histogram counts every answered request, as the counter does.
        expect(count).toBe(value(m.samples, "bulletin_requests_total", { service }))
        if (count === 0) continue
        const les = buckets.map((b) => Number(b.labels.le === "+Inf" ? Infinity : b.labels.le))
        expect(les).toEqual([...les].sort((a, b) => a - b))
        expect(les.at(-1)).toBe(Infinity)
        for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value)
        expect(buckets.at(-1)!.value).toBe(count)
        const sum = value(m.samples, "bulletin_request_duration_seconds_sum", { service })
        expect(sum).toBeGreaterThan(0)
        // Seconds, not milliseconds: nothing here took a minute.
        expect(sum / count).toBeLessThan(5)
      }
    }
  }, 30_000)

  it("shows replication on every server, and term and coordinator as `bulletin status --json` does", async () => {
    // Replication settles within moments: every server holds every origin's ops up to the same position.
    let all: Array<ReturnType<typeof parse>> = []
    const positions = (m: ReturnType<typeof parse>) =>
      JSON.stringify(Object.fromEntries(m.samples.filter((s) => s.name === "bulletin_replication_position").map((s) => [s.labels.origin, s.value]).sort()))
    for (let i = 0; i < 40; i++) {
      all = await Promise.all(serverIps.map(scrape))
      if (new Set(all.map(positions)).size === 1) break
      await new Promise((r) => setTimeout(r, 250))
    }
    expect(new Set(all.map(positions)).size, all.map(positions).join(" / ")).toBe(1)
    for (const m of all) {
      const own = value(m.samples, "bulletin_ops_applied_total", { source: "own" })
      const replicated = value(m.samples, "bulletin_ops_applied_total", { source: "replicated" })
      // Fresh stores: every op held was written by this process, its own or replicated here.
      expect(own + replicated).toBe(value(m.samples, "bulletin_store_ops"))
      expect(replicated).toBeGreaterThan(0)
      expect(value(m.samples, "bulletin_replication_gap_ops")).toBe(0)
      expect(value(m.samples, "bulletin_serving")).toBe(1)
      expect(value(m.samples, "bulletin_store_channels")).toBe(1)
    }

    const status = spawnBulletin("status", ["status", "--reference", host, "--json"], { env: { BULLETIN_KEY_FILE: `${data}/cluster.key`, BULLETIN_CLUSTER_KEY: "" } })
    expect(await status.exited, status.lines.join("\n")).toBe(0)
    const json = JSON.parse(status.lines.join("\n")) as {
      coordinator: string
      servers: Array<{ name: string; rank: number; addr: string; coordinator: string; term: { epoch: number; rank: number }; ops: number; behindOps: number; requestsPerSecond: number }>
    }
    expect(json.servers.map((s) => s.name)).toEqual(["server-1", "server-2", "server-3"])
    const byIp = new Map(json.servers.map((s) => [/tcp:\/\/([\d.]+):/.exec(s.addr)![1]!, s]))
    let coordinators = 0
    for (const [i, ip] of serverIps.entries()) {
      const s = byIp.get(ip)!
      const m = all[i]!
      expect(value(m.samples, "bulletin_rank")).toBe(s.rank)
      expect(value(m.samples, "bulletin_term_epoch")).toBe(s.term.epoch)
      expect(value(m.samples, "bulletin_term_rank")).toBe(s.term.rank)
      expect(value(m.samples, "bulletin_is_coordinator")).toBe(s.coordinator === s.name ? 1 : 0)
      coordinators += value(m.samples, "bulletin_is_coordinator")
      expect(s.ops).toBe(value(m.samples, "bulletin_store_ops"))
      expect(s.behindOps).toBe(0)
      expect(value(m.samples, "bulletin_elections_total")).toBeGreaterThanOrEqual(0)
    }
    expect(coordinators).toBe(1)
    // Whoever leads won an election it took part in.
    const leader = serverIps.findIndex((ip) => byIp.get(ip)!.name === json.coordinator)
    expect(value(all[leader]!.samples, "bulletin_elections_total")).toBeGreaterThanOrEqual(1)
  }, 30_000)

  it("answers only GET /metrics, and survives hostile HTTP", async () => {
    const ip = serverIps[1]!
    expect((await fetch(metricsUrl(ip, "/"))).status).toBe(404)
    expect((await fetch(metricsUrl(ip, "/metrics/../etc/passwd"))).status).toBe(404)
    expect((await fetch(metricsUrl(ip, "/nope?x=1"))).status).toBe(404)
    const post = await fetch(metricsUrl(ip), { method: "POST", body: "x".repeat(100_000) })
    expect(post.status).toBe(405)
    expect(post.headers.get("allow")).toBe("GET, HEAD")
    expect((await fetch(`${metricsUrl(ip)}?name=x`)).status).toBe(200)
    // Not HTTP at all, a header past the limit, binary noise: an error status, then the connection closes.
    expect(await raw(ip, "garbage\r\n\r\n")).toMatch(/^HTTP\/1\.1 400/)
    expect(await raw(ip, `GET /metrics HTTP/1.1\r\nhost: x\r\nx-big: ${"a".repeat(20_000)}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 431/)
    await raw(ip, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)).toString("latin1"))
    // Many connections at once, some left half-open: it still answers.
    const open = Array.from({ length: 40 }, () => raw(ip, "GET /metrics HTTP/1.1\r\n"))
    const r = await fetch(metricsUrl(ip))
    expect(r.status).toBe(200)
    expect(await r.text()).toContain("bulletin_requests_total")
    await Promise.all(open)
    expect(up.lines.filter((l) => /server-2 +\|.*exited/.test(l))).toEqual([])
  }, 30_000)
})
