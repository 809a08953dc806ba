import type { MonitorReport } from "../actors/monitor.ts"
import type { Note } from "./hub.ts"

/**
 * A recorded run for the dashboard's replay: the same monitoring reports a
 * live cluster publishes (here made by the simulator, on simulated time),
 * plus notes (faults, checks) on the same clock. `bulletin sim --seed S
 * --trace FILE` writes one; `bulletin dashboard --trace FILE` and
 * `bulletin sim --seed S --dashboard` replay it.
 */
export interface Trace {
  readonly kind: "bulletin-trace"
  readonly version: 1
  readonly title: string
  /** The run's time span, on the reports' clock (ms). */
  readonly startAt: number
  readonly endAt: number
  readonly reports: ReadonlyArray<MonitorReport>
  readonly notes: ReadonlyArray<Note>
  readonly checks: ReadonlyArray<{ readonly name: string; readonly ok: boolean; readonly detail: string }>
}

export const isTrace = (u: unknown): u is Trace => {
  const t = u as Partial<Trace> | null
  return typeof t === "object" && t !== null && t.kind === "bulletin-trace" && t.version === 1 && Array.isArray(t.reports) && Array.isArray(t.notes) && typeof t.startAt === "number" && typeof t.endAt === "number"
}
