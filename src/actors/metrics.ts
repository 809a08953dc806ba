import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { Context, Effect, Metric } from "effect"
import type { InspectionEvent } from "xstate"
import { stateName } from "./monitor.ts"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import { Limits } from "../protocol/limits.ts"
import { services } from "../protocol/messages.ts"

/**
 * A server's metrics (our extension: `bulletin server --metrics-port`), on
 * Effect's own: counters and a histogram updated as requests are answered
 * and ops applied, gauges read from the server's parts when scraped, all in
 * a registry of this server's own (the simulator runs many servers in one
 * process), rendered by Effect's Prometheus formatter. See the README's
 * "Metrics" for the list.
 *
 * Label values come from fixed sets only: a service nobody knows, or a frame
 * without one, is `unknown`, so a hostile client cannot grow the registry.
 */

const knownServices: ReadonlySet<string> = new Set(services)

/** The `service` label of a request: a client service we know, else `unknown`. */
export const serviceLabel = (service: string | undefined): string => (service !== undefined && knownServices.has(service) ? service : "unknown")

/** How a request was answered: done, refused for good, refused for now (retry: disk trouble, not caught up), or past the server's limit. */
export type RequestStatus = "ok" | "error" | "retry" | "busy"

/** The `status` label of a reply's data. */
export const statusLabel = (data: { readonly status?: unknown; readonly retry?: unknown; readonly busy?: unknown }): RequestStatus =>
  data.busy === true ? "busy" : data.status === "erro" ? (data.retry === true ? "retry" : "error") : "ok"

/** Request latency buckets (seconds): a local answer takes well under a millisecond, a wait for replication up to `replicationWaitMs`. */
export const latencyBucketsSeconds: ReadonlyArray<number> = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

/**
 * Events per second over the last `windowMs`, in buckets of `bucketMs`
 * (`requests/s` in `bulletin status`): bounded memory, time given by the
 * caller (the role's Clock).
 */
export class RateWindow {
  readonly #bucketMs: number
  readonly #counts: Array<number>
  /** The bucket index (time / bucketMs) each slot holds. */
  readonly #slots: Array<number>
  readonly #startedMs: number

  constructor(nowMs: number, windowMs = 5_000, bucketMs = 1_000) {
    this.#bucketMs = bucketMs
    const n = Math.max(1, Math.ceil(windowMs / bucketMs))
    this.#counts = new Array<number>(n).fill(0)
    this.#slots = new Array<number>(n).fill(-1)
    this.#startedMs = nowMs
  }

  add(nowMs: number, n = 1): void {
    const b = Math.floor(nowMs / this.#bucketMs)
    const i = b % this.#counts.length
    if (this.#slots[i] !== b) {
      this.#slots[i] = b
      this.#counts[i] = 0
    }
    this.#counts[i]! += n
  }

  /** Per second, over the window (or the time since it started, if shorter). */
  perSecond(nowMs: number): number {
    const b = Math.floor(nowMs / this.#bucketMs)
    const oldest = b - this.#counts.length + 1
    let total = 0
    for (let i = 0; i < this.#counts.length; i++) if (this.#slots[i]! >= oldest && this.#slots[i]! <= b) total += this.#counts[i]!
    // The current bucket is partly over: the window spans (n - 1) whole buckets and the part of this one.
    const spanMs = Math.min((this.#counts.length - 1) * this.#bucketMs + (nowMs - b * this.#bucketMs), nowMs - this.#startedMs)
    return spanMs <= 0 ? 0 : (total * 1000) / spanMs
  }
}

/** What the gauges show, read from the server when scraped. */
export interface ServerSample {
  readonly serving: boolean
  readonly inFlight: number
  readonly lamport: number
  readonly rank: number | undefined
  readonly term: { readonly epoch: number; readonly rank: number } | undefined
  readonly isCoordinator: boolean
  readonly peers: number
  /** Berkeley correction of this server's clock (ms). */
  readonly offsetMs: number
  readonly ops: number
  readonly users: number
  readonly channels: number
  /** Per origin, the contiguous prefix of its ops held here. */
  readonly vector: ReadonlyMap<string, number>
  /** Per origin, the highest seq held here (past a gap, above the prefix). */
  readonly lastSeq: (origin: string) => number
  /** Live replication lag of the last monitoring interval's ops (ms), if any arrived. */
  readonly lag: { readonly p50Ms: number; readonly p99Ms: number } | undefined
}

type Gauge = Metric.Gauge<number>

export class ServerMetrics {
  /** This server's registry: nothing shared with another server in the process. */
  readonly context: Context.Context<never> = Context.make(Metric.MetricRegistry, new Map()) as Context.Context<never>
  readonly #requests = new Map<string, Metric.Counter<number>>()
  readonly #latency = new Map<string, Metric.Histogram<number>>()
  readonly #ops = new Map<string, Metric.Counter<number>>()
  readonly #perOrigin = new Map<string, { readonly position: Gauge; readonly gap: Gauge }>()
  readonly #elections = Metric.counter("bulletin_elections_total", { description: "Elections this server has seen start (Bully)", incremental: true })
  readonly #coordinatorChanges = Metric.counter("bulletin_coordinator_changes_total", { description: "Times this server has learnt of a new coordinator", incremental: true })
  readonly #refused = Metric.counter("bulletin_replication_frames_refused_total", { description: "Replication frames refused: not sealed with the cluster's key", incremental: true })
  readonly #gauges = {
    serving: this.#gauge("bulletin_serving", "1 once the server has caught up and takes client requests, else 0"),
    inFlight: this.#gauge("bulletin_requests_in_flight", "Client requests being handled now"),
    lamport: this.#gauge("bulletin_lamport_clock", "This server's Lamport clock"),
    rank: this.#gauge("bulletin_rank", "This server's rank from the reference (0: none yet)"),
    epoch: this.#gauge("bulletin_term_epoch", "Epoch of the coordinator's term this server follows"),
    termRank: this.#gauge("bulletin_term_rank", "Rank in the coordinator's term this server follows"),
    isCoordinator: this.#gauge("bulletin_is_coordinator", "1 if this server is the coordinator it follows, else 0"),
    peers: this.#gauge("bulletin_peers", "Other servers the reference lists"),
    offset: this.#gauge("bulletin_clock_offset_seconds", "Berkeley correction applied to this server's clock"),
    ops: this.#gauge("bulletin_store_ops", "Ops held in this server's store"),
    users: this.#gauge("bulletin_store_users", "Users known"),
    channels: this.#gauge("bulletin_store_channels", "Channels known"),
    lagP50: Metric.gauge("bulletin_replication_lag_seconds", { description: "Live replication lag (apply time minus the op's timestamp) over the last second's ops", attributes: { quantile: "0.5" } }),
    lagP99: Metric.gauge("bulletin_replication_lag_seconds", { description: "Live replication lag (apply time minus the op's timestamp) over the last second's ops", attributes: { quantile: "0.99" } }),
  }

  #gauge(name: string, description: string): Gauge {
    return Metric.gauge(name, { description })
  }

  constructor() {
    // Every series exists from the start (a scrape before the first election shows 0, not nothing).
    this.#elections.updateUnsafe(0, this.context)
    this.#coordinatorChanges.updateUnsafe(0, this.context)
    this.#refused.updateUnsafe(0, this.context)
    for (const source of ["own", "replicated"]) this.opsApplied(source as "own", 0)
  }

  /** A client request answered (busy ones too), with its latency. */
  request(service: string | undefined, status: RequestStatus, seconds: number): void {
    const s = serviceLabel(service)
    const key = `${s} ${status}`
    let counter = this.#requests.get(key)
    if (counter === undefined) {
      counter = Metric.counter("bulletin_requests_total", { description: "Client requests answered, by service and outcome", incremental: true, attributes: { service: s, status } })
      this.#requests.set(key, counter)
    }
    counter.updateUnsafe(1, this.context)
    let histogram = this.#latency.get(s)
    if (histogram === undefined) {
      histogram = Metric.histogram("bulletin_request_duration_seconds", { description: "Time from a request's arrival to its reply, by service", boundaries: latencyBucketsSeconds, attributes: { service: s } })
      this.#latency.set(s, histogram)
    }
    histogram.updateUnsafe(Math.max(0, seconds), this.context)
  }

  /** Ops newly written to the store (duplicates not counted): this server's own, or other servers' replicated here. */
  opsApplied(source: "own" | "replicated", n: number): void {
    let counter = this.#ops.get(source)
    if (counter === undefined) {
      counter = Metric.counter("bulletin_ops_applied_total", { description: "Ops newly written to this server's store: its own, or replicated from the others", incremental: true, attributes: { source } })
      this.#ops.set(source, counter)
    }
    counter.updateUnsafe(n, this.context)
  }

  electionStarted(): void {
    this.#elections.updateUnsafe(1, this.context)
  }

  /**
   * An xstate `inspect` observer for the Bully machine: each time it enters
   * `electing` is an election (microsteps count, so an election won within
   * one macrostep counts too).
   */
  bullyObserver(): (e: InspectionEvent) => void {
    let electing = false
    return (e) => {
      if ((e.type !== "@xstate.snapshot" && e.type !== "@xstate.microstep") || e.actorRef.sessionId !== e.rootId) return
      const value = (e.snapshot as { value?: unknown }).value
      if (value === undefined) return
      const now = stateName(value).startsWith("electing")
      if (now && !electing) this.electionStarted()
      electing = now
    }
  }

  coordinatorChanged(): void {
    this.#coordinatorChanges.updateUnsafe(1, this.context)
  }

  frameRefused(): void {
    this.#refused.updateUnsafe(1, this.context)
  }

  /** Sets every gauge from the server's state now. */
  sample(s: ServerSample): void {
    const set = (g: Gauge, v: number) => g.updateUnsafe(Number.isFinite(v) ? v : 0, this.context)
    const g = this.#gauges
    set(g.serving, s.serving ? 1 : 0)
    set(g.inFlight, s.inFlight)
    set(g.lamport, s.lamport)
    set(g.rank, s.rank ?? 0)
    set(g.epoch, s.term?.epoch ?? 0)
    set(g.termRank, s.term?.rank ?? 0)
    set(g.isCoordinator, s.isCoordinator ? 1 : 0)
    set(g.peers, s.peers)
    set(g.offset, s.offsetMs / 1000)
    set(g.ops, s.ops)
    set(g.users, s.users)
    set(g.channels, s.channels)
    set(g.lagP50, (s.lag?.p50Ms ?? 0) / 1000)
    set(g.lagP99, (s.lag?.p99Ms ?? 0) / 1000)
    let origins = 0
    for (const [origin, prefix] of s.vector) {
      // Origins are server names (a store holds at most originsMax of them): bounded.
      if (origins++ >= Limits.originsMax) break
      let pair = this.#perOrigin.get(origin)
      if (pair === undefined) {
        pair = {
          position: Metric.gauge("bulletin_replication_position", { description: "Per origin server, the highest seq up to which this server holds every op (its replication vector)", attributes: { origin } }),
          gap: Metric.gauge("bulletin_replication_gap_ops", { description: "Per origin server, ops held past a hole (highest seq held minus the contiguous position): a pull is filling it", attributes: { origin } }),
        }
        this.#perOrigin.set(origin, pair)
      }
      set(pair.position, prefix)
      set(pair.gap, Math.max(0, s.lastSeq(origin) - prefix))
    }
  }

  /** The Prometheus text format of every metric (after `sample`). */
  render(): string {
    return PrometheusMetrics.formatUnsafe(this.context)
  }
}

/** Requests to the endpoint handled at once; past it a connection is refused. */
const connectionsMax = 64

/**
 * Serves `GET /metrics` (Prometheus' text format, from `render`) on
 * host:port until the scope closes. Anything else is answered and closed:
 * another path 404, another method 405, a request that is not HTTP 400 (by
 * Node), one that is too slow 408; headers are bounded, bodies never read.
 * Fails if the address cannot be bound (taken, not this host's).
 */
export const serveMetrics = (host: string, port: number, render: () => string) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly server: ReturnType<typeof createServer>; readonly url: string }, Error>((resume) => {
      const server = createServer({ requestTimeout: 5_000, headersTimeout: 5_000, keepAliveTimeout: 5_000, connectionsCheckingInterval: 1_000, maxHeaderSize: 8 * 1024 }, (req, res) => {
        const path = (req.url ?? "").split("?")[0]
        const answer = (status: number, body: string, headers: Record<string, string> = {}) => {
          res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body), ...headers })
          res.end(req.method === "HEAD" ? undefined : body)
        }
        // A body (a POST's) is never read: drained and dropped, bounded by the request timeout.
        req.resume()
        if (path !== "/metrics") return answer(404, "not found: this endpoint serves GET /metrics only\n")
        if (req.method !== "GET" && req.method !== "HEAD") return answer(405, "method not allowed: GET /metrics\n", { allow: "GET, HEAD" })
        let body: string
        try {
          body = render()
        } catch (e) {
          return answer(500, `metrics unavailable: ${(e as Error).message}\n`)
        }
        answer(200, body, { "content-type": "text/plain; version=0.0.4; charset=utf-8" })
      })
      server.maxConnections = connectionsMax
      server.headersTimeout = 5_000
      server.on("clientError", (e: NodeJS.ErrnoException, socket) => {
        const status = e.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : e.code === "ERR_HTTP_REQUEST_TIMEOUT" ? "408 Request Timeout" : "400 Bad Request"
        if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`)
        else socket.destroy()
      })
      const failed = (e: NodeJS.ErrnoException) => {
        resume(Effect.fail(new Error(e.code === "EADDRINUSE" ? `${host}:${port} is already in use` : e.code === "EADDRNOTAVAIL" ? `${host} is not an address of this host` : e.message)))
      }
      server.once("error", failed)
      server.listen({ host, port, exclusive: true }, () => {
        server.off("error", failed)
        // Later errors (a socket's) are the connection's, not the server's.
        server.on("error", () => {})
        const a = server.address() as AddressInfo
        resume(Effect.succeed({ server, url: `http://${a.family === "IPv6" ? `[${a.address}]` : a.address}:${a.port}/metrics` }))
      })
      return Effect.sync(() => void server.close())
    }),
    ({ server }) =>
      Effect.callback<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      }),
  )
