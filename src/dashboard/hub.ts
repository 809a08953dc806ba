import type { ServerResponse } from "node:http"
import type { MonitorReport } from "../actors/monitor.ts"
import type { RoleStatus } from "./roles.ts"

/**
 * What the dashboard page is fed: the servers' monitoring reports, the
 * processes' status when `bulletin up` runs them, and notes (what a person
 * did with a button). Kept in bounded backlogs, so a page opened late still
 * draws the last minutes, and pushed to every open page as server-sent
 * events. A page that does not keep up (its socket buffer past
 * `clientBufferMaxBytes`) is disconnected rather than buffered without end;
 * it reconnects by itself (EventSource) and gets the backlog again.
 */
export interface Note {
  readonly at: number
  readonly text: string
}

export interface HubLimits {
  readonly reportsMax: number
  readonly notesMax: number
  readonly clientsMax: number
  readonly clientBufferMaxBytes: number
  /** The backlog a page gets when it opens: the latest reports that fit. */
  readonly backlogMaxBytes: number
}

/**
 * At most clientsMax pages, each buffering at most backlogMaxBytes +
 * clientBufferMaxBytes: the dashboard's memory for pages stays under 64 MiB
 * however many open (300 pages once grew `bulletin up` to 942 MB).
 */
export const defaultHubLimits: HubLimits = { reportsMax: 3_000, notesMax: 200, clientsMax: 32, clientBufferMaxBytes: 1 << 20, backlogMaxBytes: 1 << 20 }

const frame = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`

export class DashboardHub {
  readonly limits: HubLimits
  readonly #reports: Array<MonitorReport> = []
  readonly #notes: Array<Note> = []
  #roles: ReadonlyArray<RoleStatus> | undefined
  readonly #clients = new Set<ServerResponse>()

  constructor(limits: Partial<HubLimits> = {}) {
    this.limits = { ...defaultHubLimits, ...limits }
  }

  report(r: MonitorReport): void {
    this.#reports.push(r)
    if (this.#reports.length > this.limits.reportsMax) this.#reports.splice(0, this.#reports.length - this.limits.reportsMax)
    this.#broadcast(frame("report", r))
  }

  note(n: Note): void {
    this.#notes.push(n)
    if (this.#notes.length > this.limits.notesMax) this.#notes.shift()
    this.#broadcast(frame("note", n))
  }

  roles(roles: ReadonlyArray<RoleStatus>): void {
    this.#roles = roles
    this.#broadcast(frame("roles", roles))
  }

  /** Makes `res` an event stream: the backlog first, then everything live. Returns false when too many pages are open. */
  attach(res: ServerResponse): boolean {
    if (this.#clients.size >= this.limits.clientsMax) return false
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive", "x-accel-buffering": "no" })
    res.write(`retry: 1000\n\n`)
    res.write(frame("backlog", { reports: this.#latest(), notes: this.#notes, roles: this.#roles ?? null }))
    this.#clients.add(res)
    res.on("close", () => this.#clients.delete(res))
    return true
  }

  /** The latest reports whose JSON fits backlogMaxBytes. */
  #latest(): ReadonlyArray<MonitorReport> {
    let bytes = 0
    let i = this.#reports.length
    while (i > 0) {
      bytes += JSON.stringify(this.#reports[i - 1]).length + 1
      if (bytes > this.limits.backlogMaxBytes) break
      i -= 1
    }
    return this.#reports.slice(i)
  }

  close(): void {
    for (const c of this.#clients) c.end()
    this.#clients.clear()
  }

  #broadcast(text: string) {
    for (const c of this.#clients) {
      if (c.writableLength > this.limits.clientBufferMaxBytes) {
        c.destroy()
        this.#clients.delete(c)
        continue
      }
      c.write(text)
    }
  }
}
