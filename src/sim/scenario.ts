import { Prng } from "./prng.ts"

/**
 * One simulated run, as data: the cluster, its network and clocks, and the
 * faults injected during the fault phase. After `faultPhaseMs` the network
 * heals (no partitions, drops or duplicates; delays stay), crashed nodes
 * restart and clock steps stop; the heal phase checks liveness.
 *
 * Node names: the reference is `reference`, the proxy `proxy`, servers are
 * `s1` .. `sN`. Partitions, cuts, crashes and restarts apply to all of them.
 */
export interface NetworkParams {
  readonly delayMinMs: number
  /** Delays are uniform in [min, max]: messages overtake each other (reordering). */
  readonly delayMaxMs: number
  readonly dropRate: number
  readonly duplicateRate: number
}

export interface ClockParams {
  /** Raw clock minus true time at the start. */
  readonly skewMs: number
  /** Raw clock rate error, parts per million. */
  readonly driftPpm: number
}

export type Fault =
  /** Nodes in different groups cannot reach each other (both ways). Nodes in no group are cut off from all. */
  | { readonly at: number; readonly kind: "partition"; readonly groups: ReadonlyArray<ReadonlyArray<string>> }
  /** Messages from `from` to `to` are lost; the other way works. */
  | { readonly at: number; readonly kind: "cut"; readonly from: string; readonly to: string }
  | { readonly at: number; readonly kind: "heal" }
  | { readonly at: number; readonly kind: "crash"; readonly node: string }
  | { readonly at: number; readonly kind: "restart"; readonly node: string }
  /** The node's raw clock jumps by `ms` (either way). */
  | { readonly at: number; readonly kind: "clockStep"; readonly node: string; readonly ms: number }

export interface Scenario {
  /** Seeds the run's own draws (delays, drops, duplicates, start times). */
  readonly seed: number
  readonly servers: number
  readonly faultPhaseMs: number
  readonly healPhaseMs: number
  /** The network during the fault phase. */
  readonly network: NetworkParams
  /** The network during the heal phase (drop and duplicate rates are 0 there). */
  readonly healDelayMinMs: number
  readonly healDelayMaxMs: number
  readonly clocks: ReadonlyArray<ClockParams>
  /** Client requests handled per second per server (drives the "every 10 messages" rounds). */
  readonly messagesPerSecond: number
  /**
   * Channel posts per second written by clients during the fault phase, each
   * with a request id, sent to a random server and retried on another after
   * a timeout (Lazy Pirate). Absent in older scenarios: 0.
   */
  readonly writesPerSecond?: number
  readonly faults: ReadonlyArray<Fault>
}

export const serverName = (i: number) => `s${i + 1}`
export const referenceName = "reference"
/** Publications (coordinator announcements) go through the proxy: it can be cut off or crash too. */
export const proxyName = "proxy"

export const scenarioLimits = {
  serversMax: 7,
  skewMsMax: 2_000,
  driftPpmMax: 200,
  clockStepMsMax: 3_000,
  delayMsMax: 50,
  dropRateMax: 0.3,
  duplicateRateMax: 0.1,
  faultsMax: 12,
} as const

/** A scenario drawn from a seed alone: what `bulletin sim --seed S` runs. */
export const generateScenario = (seed: number): Scenario => {
  const r = new Prng(seed)
  const servers = r.int(3, 5)
  const names = Array.from({ length: servers }, (_, i) => serverName(i))
  const all = [referenceName, proxyName, ...names]
  const faultPhaseMs = 20_000
  const faults: Array<Fault> = []
  const faultCount = r.int(0, 8)
  for (let i = 0; i < faultCount; i++) {
    const at = r.int(0, faultPhaseMs - 1)
    switch (r.int(0, 5)) {
      case 0: {
        const shuffled = r.shuffle(all)
        const cut = r.int(1, shuffled.length - 1)
        faults.push({ at, kind: "partition", groups: [shuffled.slice(0, cut), shuffled.slice(cut)] })
        break
      }
      case 1: {
        const from = r.pick(all)
        faults.push({ at, kind: "cut", from, to: r.pick(all.filter((n) => n !== from)) })
        break
      }
      case 2:
        faults.push({ at, kind: "heal" })
        break
      case 3:
        faults.push({ at, kind: "crash", node: r.pick(all) })
        break
      case 4:
        faults.push({ at, kind: "restart", node: r.pick(all) })
        break
      default:
        faults.push({ at, kind: "clockStep", node: r.pick(names), ms: r.int(-scenarioLimits.clockStepMsMax, scenarioLimits.clockStepMsMax) })
    }
  }
  const delayMinMs = r.int(1, 10)
  return {
    seed: r.nextU32(),
    servers,
    faultPhaseMs,
    healPhaseMs: 60_000,
    network: { delayMinMs, delayMaxMs: delayMinMs + r.int(0, 40), dropRate: r.real(0, scenarioLimits.dropRateMax), duplicateRate: r.real(0, scenarioLimits.duplicateRateMax) },
    healDelayMinMs: delayMinMs,
    healDelayMaxMs: delayMinMs + r.int(0, 20),
    clocks: names.map(() => ({ skewMs: r.int(-scenarioLimits.skewMsMax, scenarioLimits.skewMsMax), driftPpm: r.int(-scenarioLimits.driftPpmMax, scenarioLimits.driftPpmMax) })),
    messagesPerSecond: r.int(0, 20),
    writesPerSecond: r.int(0, 30),
    faults: faults.sort((a, b) => a.at - b.at),
  }
}

export const describeFault = (f: Fault): string => {
  switch (f.kind) {
    case "partition":
      return `partition ${f.groups.map((g) => `{${g.join(" ")}}`).join(" | ")}`
    case "cut":
      return `cut ${f.from} -> ${f.to}`
    case "heal":
      return "heal the network"
    case "crash":
      return `crash ${f.node}`
    case "restart":
      return `restart ${f.node}`
    case "clockStep":
      return `step ${f.node}'s clock by ${f.ms} ms`
  }
}
