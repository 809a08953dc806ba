import type { InspectionEvent } from "xstate"
import type { CoordinationSnapshot } from "./coordination.ts"
import { decode } from "../protocol/codec.ts"

/**
 * The monitoring channel (our extension): what a server tells whoever
 * watches — `bulletin monitor`, the dashboard — about its machines.
 *
 * Every `intervalMs` a server publishes one report on the proxy, topic
 * `monitor`: its identity and role, the state of each of its machines, its
 * clock offset, replication position and lag, request rate, and the machine
 * transitions since the last report (at most `transitionsMax`, the excess
 * only counted). Reports are sampled and bounded, so watching costs the
 * cluster little; and ZeroMQ filters subscriptions at the publisher, so when
 * nobody subscribes to `monitor` the reports never leave the server.
 *
 * The Monitor itself does no I/O: it is fed xstate inspection events (one
 * `inspect` observer per machine) and asked for a report.
 */
export interface Transition {
  /** Server clock (ms) when it happened. */
  readonly at: number
  readonly machine: string
  readonly from: string
  readonly to: string
  readonly event: string
}

export interface MonitorReport {
  readonly server: string
  readonly at: number
  readonly rank: number | undefined
  readonly coordinator: string | undefined
  readonly term: { readonly epoch: number; readonly rank: number }
  readonly referenceUp: boolean
  readonly peers: ReadonlyArray<string>
  /** Current state of each machine, by name (e.g. bully, berkeley, replication). */
  readonly states: Readonly<Record<string, string>>
  /** Berkeley correction of this server's clock (ms). */
  readonly offsetMs: number
  readonly ops: number
  /** Per origin, the contiguous prefix of its ops held here. */
  readonly vector: Readonly<Record<string, number>>
  /** Replication lag (apply time minus the op's timestamp, on synchronised clocks) of the live ops applied during the interval; undefined if none. */
  readonly lagP50Ms: number | undefined
  readonly lagP99Ms: number | undefined
  /** Client requests handled per second over the last interval. */
  readonly requestsPerSecond: number
  /** Client requests answered "busy" (past the server's limit) per second over the last interval. */
  readonly busyPerSecond?: number
  readonly transitions: ReadonlyArray<Transition>
  /** Transitions not reported because there were more than `transitionsMax`. */
  readonly transitionsDropped: number
}

export const monitorTopic = "monitor"

const isReport = (u: unknown): u is MonitorReport => {
  const r = u as Partial<MonitorReport> | null
  return typeof r === "object" && r !== null && typeof r.server === "string" && typeof r.states === "object" && Array.isArray(r.transitions)
}

/** A report from a publication on topic `monitor`; undefined for anything else (bad msgpack, not a report). */
export const decodeReport = (payload: Uint8Array): MonitorReport | undefined => {
  const m = decode(payload)
  const report = m.ok ? (m.value as { data?: unknown } | null)?.data : undefined
  return isReport(report) ? report : undefined
}

export interface MonitorConfig {
  readonly intervalMs: number
  readonly transitionsMax: number
}

export const defaultMonitorConfig: MonitorConfig = { intervalMs: 1_000, transitionsMax: 64 }

/** "a" or "a.b" or "a.b,c.d" for parallel states. */
export const stateName = (value: unknown): string =>
  typeof value === "string" ? value : Object.entries(value as Record<string, unknown>).map(([k, v]) => `${k}.${stateName(v)}`).join(",")

type Observer = (e: InspectionEvent) => void

/** Both observers (either may be absent), for a machine watched by the monitor and by an inspector. */
export const bothObservers = (a: Observer | undefined, b: Observer | undefined): Observer | undefined =>
  a === undefined ? b : b === undefined ? a : (e) => (a(e), b(e))

/** The state a stopped machine is reported in. */
export const stoppedState = "(stopped)"

export class Monitor {
  readonly config: MonitorConfig
  readonly #now: () => number
  readonly #last = new Map<string, string>()
  #transitions: Array<Transition> = []
  #dropped = 0

  constructor(config: MonitorConfig, now: () => number) {
    this.config = config
    this.#now = now
  }

  /**
   * An xstate `inspect` observer for the machine called `machine` (only its
   * own snapshots count, not children's). Microsteps are recorded one by
   * one, so a state entered and left within one macrostep (`electing` ->
   * `leader` when no higher peer is alive) shows; eventless transitions are
   * reported with the event `always`. A stopped machine goes to `(stopped)`.
   */
  observe(machine: string): (e: InspectionEvent) => void {
    return (e) => {
      if ((e.type !== "@xstate.snapshot" && e.type !== "@xstate.microstep") || e.actorRef.sessionId !== e.rootId) return
      const snapshot = e.snapshot as { value?: unknown; status?: string }
      if (snapshot.value === undefined) return
      const stopped = snapshot.status !== undefined && snapshot.status !== "active"
      const to = stopped ? stoppedState : stateName(snapshot.value)
      const eventless = e.type === "@xstate.microstep" && e._transitions.length > 0 && e._transitions.every((t) => t.eventType === "")
      this.#record(machine, to, eventless ? "always" : e.event.type)
    }
  }

  /** The current state of every machine observed (stopped ones left out). */
  states(): Record<string, string> {
    return Object.fromEntries([...this.#last].filter(([, v]) => v !== stoppedState))
  }

  #record(machine: string, to: string, event: string) {
    const from = this.#last.get(machine)
    this.#last.set(machine, to)
    if (from === to) return
    if (this.#transitions.length >= this.config.transitionsMax) {
      this.#dropped += 1
      return
    }
    this.#transitions.push({ at: this.#now(), machine, from: from ?? "", to, event })
  }

  /** The transitions since the last call, and how many were dropped; starts a new interval. */
  drain(): { readonly transitions: ReadonlyArray<Transition>; readonly dropped: number } {
    const out = { transitions: this.#transitions, dropped: this.#dropped }
    this.#transitions = []
    this.#dropped = 0
    return out
  }
}

/** One report from what a server's parts say (the live server and the simulator both make them so). */
export const buildReport = (o: {
  readonly server: string
  readonly at: number
  readonly coordination: CoordinationSnapshot | undefined
  readonly replicationState: string
  readonly monitor: Monitor
  readonly ops: number
  readonly vector: ReadonlyMap<string, number>
  readonly lag: { readonly p50Ms: number; readonly p99Ms: number } | undefined
  readonly requestsPerSecond: number
  readonly busyPerSecond?: number
}): MonitorReport => {
  const c = o.coordination
  const { transitions, dropped } = o.monitor.drain()
  return {
    server: o.server,
    at: o.at,
    rank: c?.rank,
    coordinator: c?.coordinator?.name,
    term: c?.term ?? { epoch: 0, rank: 0 },
    referenceUp: c?.referenceUp ?? false,
    peers: (c?.peers ?? []).map((p) => p.name),
    states: { ...o.monitor.states(), ...(c === undefined ? {} : { bully: c.bully, berkeley: c.berkeley }), replication: o.replicationState },
    offsetMs: c?.offsetMs ?? 0,
    ops: o.ops,
    vector: Object.fromEntries(o.vector),
    lagP50Ms: o.lag?.p50Ms,
    lagP99Ms: o.lag?.p99Ms,
    requestsPerSecond: Math.round(o.requestsPerSecond * 10) / 10,
    ...(o.busyPerSecond === undefined || o.busyPerSecond === 0 ? {} : { busyPerSecond: Math.round(o.busyPerSecond * 10) / 10 }),
    transitions,
    transitionsDropped: dropped,
  }
}
