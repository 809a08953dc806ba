import type { InspectionEvent } from "xstate"

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
  readonly lagP50Ms: number | undefined
  readonly lagP99Ms: number | undefined
  /** Client requests handled per second over the last interval. */
  readonly requestsPerSecond: number
  readonly transitions: ReadonlyArray<Transition>
  /** Transitions not reported because there were more than `transitionsMax`. */
  readonly transitionsDropped: number
}

export const monitorTopic = "monitor"

export interface MonitorConfig {
  readonly intervalMs: number
  readonly transitionsMax: number
}

export const defaultMonitorConfig: MonitorConfig = { intervalMs: 1_000, transitionsMax: 64 }

/** "a" or "a.b" or "a.b,c.d" for parallel states. */
export const stateName = (value: unknown): string =>
  typeof value === "string" ? value : Object.entries(value as Record<string, unknown>).map(([k, v]) => `${k}.${stateName(v)}`).join(",")

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

  /** An xstate `inspect` observer for the machine called `machine` (only its own snapshots count, not children's). */
  observe(machine: string): (e: InspectionEvent) => void {
    return (e) => {
      if (e.type !== "@xstate.snapshot" || e.actorRef.sessionId !== e.rootId) return
      const value = (e.snapshot as { value?: unknown }).value
      if (value === undefined) return
      const to = stateName(value)
      const from = this.#last.get(machine)
      this.#last.set(machine, to)
      if (from === to) return
      if (this.#transitions.length >= this.config.transitionsMax) {
        this.#dropped += 1
        return
      }
      this.#transitions.push({ at: this.#now(), machine, from: from ?? "", to, event: e.event.type })
    }
  }

  /** The transitions since the last call, and how many were dropped; starts a new interval. */
  drain(): { readonly transitions: ReadonlyArray<Transition>; readonly dropped: number } {
    const out = { transitions: this.#transitions, dropped: this.#dropped }
    this.#transitions = []
    this.#dropped = 0
    return out
  }
}
