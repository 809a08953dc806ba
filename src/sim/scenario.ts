import { Prng } from "./prng.ts"

/**
 * One simulated run, as data: the cluster, its network, clocks and disks,
 * the clients' load, and the faults injected during the fault phase. After
 * `faultPhaseMs` the network heals (no partitions; delays stay), crashed
 * nodes restart, disks have room again and clock steps stop; the heal phase
 * checks liveness, then the checkers read everything back.
 *
 * Node names: the reference is `reference`, the proxy `proxy`, the broker
 * `broker`, servers are `s1` .. `sN`. Partitions, cuts, crashes and restarts
 * apply to all of them; clients (`c1` ..) and bots are never cut off.
 */
export interface NetworkParams {
  readonly delayMinMs: number
  /** Each message takes a delay uniform in [min, max]; a connection is FIFO, so it never overtakes the one before. */
  readonly delayMaxMs: number
  /** Harsher than real sockets (0 by default), per message on a connection: lost, sent twice, or allowed to overtake. */
  readonly dropRate: number
  readonly duplicateRate: number
  readonly reorderRate?: number
}

export interface DiskParams {
  /** A transaction's flush (fsync) takes a time uniform in [min, max] ms. */
  readonly flushMsMin: number
  readonly flushMsMax: number
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
  /** The server's disk is full (every write fails with ENOSPC) for `forMs`. */
  | { readonly at: number; readonly kind: "diskFull"; readonly node: string; readonly forMs: number }
  /** The server's next write fails with EIO. */
  | { readonly at: number; readonly kind: "diskError"; readonly node: string }

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
  /** Read requests (users, channels, history) per second, all clients together, during the fault phase. */
  readonly messagesPerSecond: number
  /**
   * Writes (logins, channels, posts, private messages) per second, all
   * clients together, during the fault phase. Each is a request of the real
   * client through the broker, with a request id and Lazy Pirate retries.
   */
  readonly writesPerSecond?: number
  /** Clients (the real client, each logged in as its own user). Default 2. */
  readonly clients?: number
  /** Bots (the real bot, posting at 2 per second). Default 0. */
  readonly bots?: number
  /** The servers' disks. Default: flushes of 0.5 to 3 ms. */
  readonly disk?: DiskParams
  /** Hostile clients during the fault phase (bad clocks, bad frames, bad fields; see workload.ts). Default 0. */
  readonly hostile?: number
  /** Intruders during the fault phase: hosts without the cluster's key posing as servers (see workload.ts). Default 0. */
  readonly intruders?: number
  /** Cluster links in open mode (no key): what the intruders then manage is not checked. Default false (secured). */
  readonly open?: boolean
  readonly faults: ReadonlyArray<Fault>
}

export const serverName = (i: number) => `s${i + 1}`
export const referenceName = "reference"
/** Publications (coordinator announcements) go through the proxy: it can be cut off or crash too. */
export const proxyName = "proxy"
/** Clients' requests go through the broker: it can be cut off or crash too. */
export const brokerName = "broker"

export const scenarioLimits = {
  serversMax: 7,
  skewMsMax: 2_000,
  driftPpmMax: 200,
  clockStepMsMax: 3_000,
  delayMsMax: 50,
  dropRateMax: 0.3,
  duplicateRateMax: 0.1,
  faultsMax: 12,
  clientsMax: 4,
  diskFullMsMax: 5_000,
  flushMsMax: 30,
} as const

/** A scenario drawn from a seed alone: what `bulletin sim --seed S` runs. */
export const generateScenario = (seed: number): Scenario => {
  const r = new Prng(seed)
  const servers = r.int(3, 5)
  const names = Array.from({ length: servers }, (_, i) => serverName(i))
  const all = [referenceName, proxyName, brokerName, ...names]
  const faultPhaseMs = 20_000
  const faults: Array<Fault> = []
  const faultCount = r.int(0, 8)
  for (let i = 0; i < faultCount; i++) {
    const at = r.int(0, faultPhaseMs - 1)
    switch (r.int(0, 7)) {
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
      case 5:
        faults.push(r.chance(0.5) ? { at, kind: "diskFull", node: r.pick(names), forMs: r.int(100, scenarioLimits.diskFullMsMax) } : { at, kind: "diskError", node: r.pick(names) })
        break
      default:
        faults.push({ at, kind: "clockStep", node: r.pick(names), ms: r.int(-scenarioLimits.clockStepMsMax, scenarioLimits.clockStepMsMax) })
    }
  }
  const delayMinMs = r.int(1, 10)
  // One run in eight also loses, duplicates and reorders messages on connections (real sockets do not).
  const harsh = r.chance(1 / 8)
  const flushMsMin = r.real(0.2, 2)
  return {
    seed: r.nextU32(),
    servers,
    faultPhaseMs,
    healPhaseMs: 60_000,
    network: {
      delayMinMs,
      delayMaxMs: delayMinMs + r.int(0, 40),
      dropRate: harsh ? r.real(0, scenarioLimits.dropRateMax) : 0,
      duplicateRate: harsh ? r.real(0, scenarioLimits.duplicateRateMax) : 0,
      reorderRate: harsh ? r.real(0, 0.3) : 0,
    },
    healDelayMinMs: delayMinMs,
    healDelayMaxMs: delayMinMs + r.int(0, 20),
    clocks: names.map(() => ({ skewMs: r.int(-scenarioLimits.skewMsMax, scenarioLimits.skewMsMax), driftPpm: r.int(-scenarioLimits.driftPpmMax, scenarioLimits.driftPpmMax) })),
    messagesPerSecond: r.int(0, 20),
    writesPerSecond: r.int(0, 30),
    clients: r.int(1, 3),
    bots: r.int(0, 1),
    disk: { flushMsMin, flushMsMax: flushMsMin + r.real(0, scenarioLimits.flushMsMax) },
    faults: faults.sort((a, b) => a.at - b.at),
    // Drawn last, so that the draws before it make the same scenarios as before it existed.
    hostile: r.chance(1 / 4) ? 1 : 0,
    intruders: r.chance(1 / 4) ? 1 : 0,
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
    case "diskFull":
      return `${f.node}'s disk full for ${f.forMs} ms`
    case "diskError":
      return `${f.node}'s next write fails (EIO)`
  }
}
