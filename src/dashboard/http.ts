import { readFileSync } from "node:fs"
import { type IncomingMessage, type ServerResponse, createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { fileURLToPath } from "node:url"
import type { ControlAction } from "./roles.ts"
import { serverCharts } from "./charts.ts"
import { laidOutServerCharts } from "./layout.ts"
import type { DashboardHub } from "./hub.ts"
import type { Trace } from "./trace.ts"

/**
 * The dashboard's web server: one static page (no build step, nothing from
 * the internet), the state charts read from the machine definitions and
 * laid out by ELK (./layout.ts), and
 * either a live event stream (`hub`) or a recorded simulator run (`trace`).
 * With `control` (when `bulletin up` owns the processes) it also takes the
 * buttons' requests. Binds 127.0.0.1 by default: it can stop servers.
 */
export interface DashboardOptions {
  readonly host: string
  readonly port: number
  readonly hub?: DashboardHub
  readonly trace?: Trace
  readonly control?: (role: string, action: ControlAction) => string
  /** Tells the page what it is looking at ("bulletin up", "monitor on 127.0.0.1"...). */
  readonly title?: string
}

const assets = fileURLToPath(new URL("./static/", import.meta.url))
const types: Record<string, string> = { "index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8" }
const bodyMaxBytes = 4_096
const actions: ReadonlyArray<ControlAction> = ["stop", "restart", "partition", "heal"]

const json = (res: ServerResponse, status: number, body: unknown) => {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" })
  res.end(JSON.stringify(body))
}

/** The body as text, or undefined when over `bodyMaxBytes` (the rest is read and thrown away, so the reply can be sent). */
const readBody = (req: IncomingMessage) =>
  new Promise<string | undefined>((resolve, reject) => {
    let size = 0
    const chunks: Array<Buffer> = []
    req.on("data", (c: Buffer) => {
      size += c.length
      if (size <= bodyMaxBytes) chunks.push(c)
    })
    req.on("end", () => resolve(size > bodyMaxBytes ? undefined : Buffer.concat(chunks).toString("utf8")))
    req.on("error", reject)
  })

export const serveDashboard = (o: DashboardOptions) =>
  new Promise<{ readonly url: string; readonly close: () => Promise<void> }>((resolve, reject) => {
    // Laid out once per process, while the server starts listening; the page asks for them after its first request.
    const charts = laidOutServerCharts(serverCharts).then((c) => JSON.stringify(c))
    charts.catch(() => undefined)
    // The page's files, read once: the same for every request.
    const files = new Map(Object.keys(types).map((f) => [f, readFileSync(assets + f)]))
    const handle = async (req: IncomingMessage, res: ServerResponse) => {
      // DNS rebinding: a page from elsewhere whose name now resolves to us sends its own Host. Bound to a
      // specific address, we answer only our own names; bound to every interface, any (the operator chose to).
      if (!hostAllowed(req.headers.host)) return json(res, 421, { error: `this dashboard answers only for ${[...allowedHosts].join(", ")}` })
      const url = new URL(req.url ?? "/", "http://dashboard")
      const path = url.pathname
      if (req.method === "GET" && (path === "/" || path === "/app.js" || path === "/style.css")) {
        const file = path === "/" ? "index.html" : path.slice(1)
        res.writeHead(200, { "content-type": types[file]!, "cache-control": "no-store" })
        return res.end(files.get(file))
      }
      if (path === "/favicon.ico") {
        res.writeHead(204)
        return res.end()
      }
      if (req.method === "GET" && path === "/api/info") return json(res, 200, { mode: o.trace === undefined ? "live" : "replay", controls: o.control !== undefined, title: o.title ?? "bulletin" })
      if (req.method === "GET" && path === "/api/charts") {
        const body = await charts
        res.writeHead(200, { "content-type": "application/json; charset=utf-8" })
        return res.end(body)
      }
      if (req.method === "GET" && path === "/api/trace") return o.trace === undefined ? json(res, 404, { error: "not a replay: no trace loaded" }) : json(res, 200, o.trace)
      if (req.method === "GET" && path === "/api/events") {
        if (o.hub === undefined) return json(res, 404, { error: "no live stream: this dashboard replays a trace" })
        if (!o.hub.attach(res)) return json(res, 503, { error: `too many pages open (${o.hub.limits.clientsMax})` })
        return
      }
      if (path === "/api/control") {
        if (req.method !== "POST") return json(res, 405, { error: "POST only" })
        if (o.control === undefined) return json(res, 404, { error: "no controls: only `bulletin up` owns the processes" })
        // A JSON content type cannot be sent cross-origin without a preflight we never answer: no CSRF from other pages.
        if (!(req.headers["content-type"] ?? "").startsWith("application/json")) return json(res, 415, { error: "content-type must be application/json" })
        let body: { role?: unknown; action?: unknown }
        const text = await readBody(req)
        if (text === undefined) return json(res, 413, { error: `request body over ${bodyMaxBytes} bytes` })
        try {
          body = JSON.parse(text) as typeof body
        } catch (e) {
          return json(res, 400, { error: `bad request body: ${(e as Error).message}` })
        }
        if (typeof body !== "object" || body === null || typeof body.role !== "string" || !actions.includes(body.action as ControlAction)) {
          return json(res, 400, { error: `expected {"role": NAME, "action": one of ${actions.join(", ")}}` })
        }
        try {
          const message = o.control(body.role, body.action as ControlAction)
          o.hub?.note({ at: Date.now(), text: message })
          return json(res, 200, { ok: true, message })
        } catch (e) {
          return json(res, 409, { error: (e as Error).message })
        }
      }
      return json(res, 404, { error: `no such page: ${req.method} ${path}` })
    }
    const allowedHosts = new Set<string>()
    const anyHost = o.host === "0.0.0.0" || o.host === "::" || o.host === ""
    const hostAllowed = (host: string | undefined) => anyHost || (host !== undefined && allowedHosts.has(host.toLowerCase()))
    const server = createServer((req, res) => {
      handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) json(res, 500, { error: String((e as Error).message ?? e) })
        else res.destroy()
      })
    })
    server.on("error", reject)
    server.listen(o.port, o.host, () => {
      const a = server.address() as AddressInfo
      const host = a.address.includes(":") ? `[${a.address}]` : a.address
      for (const name of [host, o.host, "localhost", ...(a.address === "127.0.0.1" || a.address === "::1" ? ["127.0.0.1", "[::1]"] : [])]) allowedHosts.add(`${name.toLowerCase()}:${a.port}`)
      resolve({
        url: `http://${host}:${a.port}/`,
        close: () =>
          new Promise<void>((done) => {
            o.hub?.close()
            server.closeAllConnections()
            server.close(() => done())
          }),
      })
    })
  })
